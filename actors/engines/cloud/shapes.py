"""Meta's Cloud API webhook payload as msgspec types (see `webhook.py` for the sources).

Unknown fields are ignored (Meta adds them all the time) and every field Meta may leave
out has a default; a value of the wrong type fails the item it is in, which the parser
drops on its own.
"""

from __future__ import annotations

from typing import Any

from msgspec import Struct

# -- the envelope ------------------------------------------------------------------


class Change(Struct):
    field: str = ""
    value: dict[str, Any] = {}


class Entry(Struct):
    id: str = ""
    changes: list[Change] = []


class Envelope(Struct):
    object: str = ""
    entry: list[Entry] = []


# -- the items of a `messages` change ------------------------------------------------


class ErrorData(Struct):
    details: str | None = None


class Error(Struct):
    code: int | None = None
    title: str | None = None
    message: str | None = None
    error_data: ErrorData | None = None


class Profile(Struct):
    name: str | None = None
    username: str | None = None


class Contact(Struct):
    wa_id: str | None = None
    user_id: str | None = None
    profile: Profile | None = None


class Metadata(Struct):
    display_phone_number: str | None = None
    phone_number_id: str | None = None


class Text(Struct):
    body: str = ""


class Media(Struct):
    id: str | None = None
    mime_type: str | None = None
    caption: str | None = None
    filename: str | None = None
    animated: bool | None = None


class Reply(Struct):
    id: str = ""
    title: str = ""
    description: str | None = None


class NfmReply(Struct):
    name: str | None = None
    body: str | None = None
    response_json: str | None = None


class Interactive(Struct):
    type: str = ""
    button_reply: Reply | None = None
    list_reply: Reply | None = None
    nfm_reply: NfmReply | None = None


class Button(Struct):
    text: str = ""
    payload: str | None = None


class Location(Struct):
    latitude: float
    longitude: float
    name: str | None = None
    address: str | None = None
    url: str | None = None


class CardName(Struct):
    formatted_name: str | None = None
    first_name: str | None = None
    last_name: str | None = None


class CardPhone(Struct):
    phone: str | None = None
    wa_id: str | None = None
    type: str | None = None


class Card(Struct):
    name: CardName | None = None
    phones: list[CardPhone] = []


class Reaction(Struct):
    message_id: str = ""
    emoji: str | None = None


class ProductItem(Struct):
    product_retailer_id: str | None = None
    quantity: int | float | str | None = None
    item_price: int | float | str | None = None
    currency: str | None = None


class Order(Struct):
    catalog_id: str | None = None
    text: str | None = None
    product_items: list[ProductItem] = []


class System(Struct):
    body: str | None = None
    type: str | None = None
    wa_id: str | None = None
    new_wa_id: str | None = None


class Context(Struct, rename={"sender": "from"}):
    sender: str | None = None
    id: str | None = None
    forwarded: bool = False
    frequently_forwarded: bool = False


class Referral(Struct):
    source_url: str | None = None
    source_id: str | None = None
    source_type: str | None = None
    headline: str | None = None
    body: str | None = None
    media_type: str | None = None
    ctwa_clid: str | None = None


class Unsupported(Struct):
    type: str | None = None


class Message(Struct, rename={"sender": "from"}):
    id: str
    type: str = "unknown"
    sender: str | None = None
    from_user_id: str | None = None
    timestamp: str | int | None = None
    text: Text | None = None
    image: Media | None = None
    video: Media | None = None
    audio: Media | None = None
    document: Media | None = None
    sticker: Media | None = None
    interactive: Interactive | None = None
    button: Button | None = None
    location: Location | None = None
    contacts: list[Card] | None = None
    reaction: Reaction | None = None
    order: Order | None = None
    system: System | None = None
    context: Context | None = None
    referral: Referral | None = None
    unsupported: Unsupported | None = None
    errors: list[Error] = []


class Status(Struct):
    id: str
    status: str
    timestamp: str | int | None = None
    recipient_id: str | None = None
    recipient_user_id: str | None = None
    errors: list[Error] = []
