"""Callback data: every button round-trips, fits 64 bytes, and anything malformed is refused."""

from __future__ import annotations

import re

import pytest

from bot.telegram import callbacks as cb
from core.browse import CardAction, Tab
from core.notifications import Channel

BIG = 10**18 - 1  # the largest id the format accepts (18 digits)
NONCE = "A" * 22

EVERY_BUTTON: list[cb.Button] = [
    cb.OpenEnvelope(BIG),
    *[cb.EnvelopeAction(BIG, action) for action in CardAction],
    cb.ResendAll(BIG),
    cb.PickSigner(BIG, BIG),
    *[cb.ResendOne(BIG, BIG, channel) for channel in Channel],
    cb.Confirm(NONCE),
    cb.Decline(NONCE),
    *[cb.ListPage(tab, 999_999) for tab in Tab],
    cb.StartSearch(),
    cb.OpenPlans(),
    cb.HistoryPage(999_999),
    *[cb.ChooseLanguage(code) for code in cb.LANGUAGE_CODES],
]


@pytest.mark.parametrize("button", EVERY_BUTTON, ids=repr)
def test_every_button_round_trips_within_64_ascii_bytes(button: cb.Button) -> None:
    data = cb.format_data(button)
    assert data.isascii() and len(data.encode()) <= 64
    assert cb.parse(data) == button


def test_the_fixed_formats_other_helpers_rely_on_are_kept() -> None:
    assert cb.format_data(cb.OpenEnvelope(12)) == "env:12"
    assert cb.format_data(cb.EnvelopeAction(12, CardAction.SEAL)) == "env:12:seal"
    assert cb.format_data(cb.ResendAll(12)) == "rsa:12"
    assert cb.format_data(cb.ResendOne(12, 34, Channel.WHATSAPP)) == "rsc:12:34:whatsapp"
    assert cb.format_data(cb.Confirm(NONCE)) == f"ok:{NONCE}"
    assert cb.format_data(cb.Decline(NONCE)) == f"no:{NONCE}"
    assert cb.format_data(cb.ListPage(Tab.PENDENTES, 2)) == "ls:pen:2"
    assert cb.format_data(cb.OpenPlans()) == "pl"


@pytest.mark.parametrize(
    "data",
    [
        None,
        "",
        "env:",
        "env:0",
        "env:-1",
        "env:007",
        "env:1.5",
        "env:1e3",
        "env: 1",
        "env:1 ",
        "env:1:",
        "env:1:delete",
        "env:1:seal:extra",
        "env:１",  # a full-width digit
        "env:1234567890123456789",  # 19 digits
        "rsa:abc",
        "rsc:1:2",
        "rsc:1:2:fax",
        "rsc:1:2:SMS",
        "rsc:1::sms",
        "sg:1",
        "ok:short",
        "ok:" + "A" * 44,
        "ok:AAAAAAAAAAAAAAAAAAAAA$",
        "no:",
        "ls:pen",
        "ls:xyz:0",
        "ls:pen:-1",
        "ls:pen:01",
        "pl:1",
        "hs:",
        "lang:de",
        "lang:pt-br",
        "mute:1",
        "ENV:1",
        "x" * 65,
        "env:1\n",
        "\x00",
    ],
)
def test_malformed_or_foreign_data_is_refused(data: str | None) -> None:
    assert cb.parse(data) is None


def test_a_button_that_cannot_be_encoded_is_refused_before_it_reaches_telegram() -> None:
    with pytest.raises(ValueError, match="callback data"):
        cb.format_data(cb.OpenEnvelope(10**18))
    with pytest.raises(ValueError, match="callback data"):
        cb.format_data(cb.Confirm("bad nonce!"))


def test_each_format_has_a_literal_head_of_its_own() -> None:
    """`parse` only tries the patterns of the data's head (the text before the first colon)."""
    for pattern, kind in cb._PATTERNS:
        head = pattern.pattern.split(":", 1)[0]
        assert re.escape(head) == head and head.isalpha(), pattern.pattern
        assert (pattern, kind) in cb._BY_HEAD[head]
    assert sum(len(v) for v in cb._BY_HEAD.values()) == len(cb._PATTERNS)
