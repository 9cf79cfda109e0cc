"""Phone numbers and WhatsApp ids (JIDs) as the API accepts them."""

import re

USER_SERVER = "s.whatsapp.net"
GROUP_SERVER = "g.us"
LID_SERVER = "lid"
# A business-scoped user id (Cloud API): how Meta names a WhatsApp user who may have
# hidden their number behind a username, e.g. `US.13491208655302741918`; such a chat's
# JID is `<BSUID>@bsuid` (not a WhatsApp server: a name this API gives them).
BSUID_SERVER = "bsuid"

_STRIP = re.compile(r"[+\s\-()]")
_DIGITS = re.compile(
    r"\d{8,15}", re.ASCII
)  # ASCII digits only, not full-width or Arabic-Indic ones
_JID = re.compile(r"(\d{5,32}(-\d{5,16})?)@(s\.whatsapp\.net|g\.us|lid)", re.ASCII)
_BSUID = re.compile(r"[A-Z]{2}(\.ENT)?\.[A-Za-z0-9]{1,128}", re.ASCII)


class InvalidPhoneNumber(ValueError):
    """The text is neither a phone number (8-15 digits) nor a WhatsApp id."""


def normalize_phone(raw: str) -> str:
    """Digits of a phone number in international form, after stripping `+`, spaces,
    dashes and brackets; `00` (the international call prefix) counts as a `+`.

    A number that still starts with 0 is a national one (no country code starts with 0):
    refused, since it would be read as another country's number."""
    digits = _STRIP.sub("", raw)
    if digits.startswith("00") and not raw.lstrip().startswith("+"):
        digits = digits[2:]
    if digits.startswith("0"):
        raise InvalidPhoneNumber(
            f"'{raw}' looks like a national number: write it with its country code "
            "(+44 7911 123456, or 0044 7911 123456)"
        )
    if not _DIGITS.fullmatch(digits):
        raise InvalidPhoneNumber(
            f"'{raw}' is not a phone number: expected 8 to 15 digits, optionally with +, "
            "spaces or dashes"
        )
    return digits


def to_jid(raw: str) -> str:
    """The JID for a phone number, or the JID itself when one is given."""
    raw = raw.strip()
    if "@" in raw:
        local, _, server = raw.partition("@")
        if not (_JID.fullmatch(raw) or (server == BSUID_SERVER and is_bsuid(local))):
            raise InvalidPhoneNumber(f"'{raw}' is not a valid WhatsApp id")
        return raw
    if is_bsuid(raw):
        return f"{raw}@{BSUID_SERVER}"
    return f"{normalize_phone(raw)}@{USER_SERVER}"


def is_bsuid(text: str) -> bool:
    """Whether `text` is a business-scoped user id: a two-letter country code, `.ENT`
    for a parent id, a dot and up to 128 letters and digits."""
    return _BSUID.fullmatch(text) is not None


def jid_number(jid: str) -> str:
    """The number part of a JID (`15550001@s.whatsapp.net` -> `15550001`)."""
    return jid.split("@", 1)[0]


def is_group(jid: str) -> bool:
    return jid.endswith("@" + GROUP_SERVER)


def is_lid(jid: str) -> bool:
    """A LID (`…@lid`): WhatsApp's name for a person that does not reveal the number."""
    return jid.endswith("@" + LID_SERVER)


def phone_jid(phone: str) -> str:
    return f"{phone}@{USER_SERVER}"


_LID = re.compile(r"\d{5,32}@lid", re.ASCII)


def to_lid(raw: str) -> str:
    """A LID as given (`<digits>@lid`); InvalidPhoneNumber otherwise."""
    raw = raw.strip()
    if not _LID.fullmatch(raw):
        raise InvalidPhoneNumber(f"'{raw}' is not a LID: expected digits followed by @lid")
    return raw
