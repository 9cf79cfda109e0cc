"""Phone numbers and WhatsApp ids (JIDs) as the API accepts them."""

import re

USER_SERVER = "s.whatsapp.net"
GROUP_SERVER = "g.us"

_STRIP = re.compile(r"[+\s\-()]")
_DIGITS = re.compile(
    r"\d{8,15}", re.ASCII
)  # ASCII digits only, not full-width or Arabic-Indic ones
_JID = re.compile(r"(\d{5,32}(-\d{5,16})?)@(s\.whatsapp\.net|g\.us|lid)", re.ASCII)


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
        if not _JID.fullmatch(raw):
            raise InvalidPhoneNumber(f"'{raw}' is not a valid WhatsApp id")
        return raw
    return f"{normalize_phone(raw)}@{USER_SERVER}"


def jid_number(jid: str) -> str:
    """The number part of a JID (`15550001@s.whatsapp.net` -> `15550001`)."""
    return jid.split("@", 1)[0]


def is_group(jid: str) -> bool:
    return jid.endswith("@" + GROUP_SERVER)
