"""Brazilian phone numbers through `phonenumbers`: E.164 in, national format out."""

from __future__ import annotations

from functools import lru_cache

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberFormat, PhoneNumberType

from core.errors import InvalidInput

_MOBILE_TYPES = {PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE}


class PhoneNumbers:
    """The PhoneBook port; Brazil is the default region, so "(11) 98765-4321" parses."""

    def __init__(self, default_region: str = "BR") -> None:
        self.default_region = default_region

    def normalize(self, raw: str) -> str:
        text = raw.strip()
        digits = "".join(ch for ch in text if ch.isdigit())
        if not text.startswith("+") and self.default_region == "BR" and len(digits) in (8, 9):
            raise InvalidInput(
                f"{raw!r} has no area code (DDD): write it as (11) 98765-4321",
                field="phone",
                reason="no_ddd",
            )
        try:
            number = phonenumbers.parse(text, self.default_region)
        except NumberParseException as exc:
            raise InvalidInput(
                f"{raw!r} is not a phone number", field="phone", reason="not_a_number"
            ) from exc
        if not phonenumbers.is_valid_number(number):
            raise InvalidInput(
                f"{raw!r} is not a valid phone number (check the DDD and that "
                "mobiles have 9 digits starting with 9)",
                field="phone",
                reason="invalid",
            )
        return phonenumbers.format_number(number, PhoneNumberFormat.E164)

    def is_mobile(self, e164: str) -> bool:
        return _facts(e164)[1]

    def region(self, e164: str) -> str:
        return _facts(e164)[0]


# Every resend quote asks both questions for each signer, and every card shows numbers: a
# parse costs about 20 µs, and an account's signers are a small, repeating set of numbers.
@lru_cache(maxsize=4096)
def _facts(e164: str) -> tuple[str, bool]:
    """The region and whether it is a mobile number, for one E.164 number."""
    number = phonenumbers.parse(e164)
    region = phonenumbers.region_code_for_number(number) or "ZZ"
    return region, phonenumbers.number_type(number) in _MOBILE_TYPES


@lru_cache(maxsize=4096)
def national(e164: str) -> str:
    """`+5511987654321` shown as `(11) 98765-4321`."""
    return phonenumbers.format_number(phonenumbers.parse(e164), PhoneNumberFormat.NATIONAL)


def mask_phone(e164: str) -> str:
    """For logs: keep the country, DDD and the last two digits."""
    if len(e164) < 8:
        return "***"
    return f"{e164[:5]}{'*' * (len(e164) - 7)}{e164[-2:]}"


def mask_email(address: str) -> str:
    """For logs: `m***@example.com`."""
    local, _, domain = address.partition("@")
    return f"{local[:1]}***@{domain}" if domain else "***"
