import pytest

from domain.phone import InvalidPhoneNumber, normalize_phone, to_jid


@pytest.mark.parametrize(
    ("raw", "digits"),
    [
        ("15550000001", "15550000001"),
        ("+1 555-000-0001", "15550000001"),
        ("(49) 301234567", "49301234567"),
        # 00 is how much of the world dials +.
        ("0044 7911 123456", "447911123456"),
        ("00 55 11 98765-4321", "5511987654321"),
    ],
)
def test_phone_numbers_are_stripped_to_digits(raw: str, digits: str) -> None:
    assert normalize_phone(raw) == digits


@pytest.mark.parametrize("raw", ["1234567", "1234567890123456", "abc12345678", "", "+"])
def test_bad_phone_numbers_are_refused(raw: str) -> None:
    with pytest.raises(InvalidPhoneNumber):
        normalize_phone(raw)


@pytest.mark.parametrize(
    "raw", ["07911 123456", "011 98765 4321", "+0 7911 123456", "000447911123456"]
)
def test_national_numbers_are_refused_with_a_hint(raw: str) -> None:
    # Read as digits, 07911123456 would be a number of another country (+7 is Russia).
    with pytest.raises(InvalidPhoneNumber, match="country code"):
        normalize_phone(raw)


def test_jids_pass_through_and_numbers_become_jids() -> None:
    assert to_jid("120363025246125888@g.us") == "120363025246125888@g.us"
    assert to_jid("+49 30 1234567") == "49301234567@s.whatsapp.net"
    with pytest.raises(InvalidPhoneNumber):
        to_jid("x@example.com")
