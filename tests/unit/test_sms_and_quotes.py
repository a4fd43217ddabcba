"""SMS segments (GSM-7 and UCS-2), the one-segment signature request, quotes per channel."""

from __future__ import annotations

import pytest

from core.notifications import Channel, quote, sms_segments
from core.services import compose_sms

LINK = "https://app.assin.com.br/assinar/ENV-1001"


# -- GSM-7: 160 in one segment, 153 per segment once split -------------------------------------


@pytest.mark.parametrize(
    ("length", "segments"),
    [(1, 1), (160, 1), (161, 2), (306, 2), (307, 3), (459, 3), (460, 4)],
)
def test_plain_text_is_gsm7_160_in_one_segment_then_153_per_segment(
    length: int, segments: int
) -> None:
    result = sms_segments("a" * length)
    assert (result.encoding, result.units, result.segments) == ("GSM-7", length, segments)


def test_the_gsm7_letters_portuguese_shares_with_it_keep_gsm7() -> None:
    # é, à, Ç and Ü are in the GSM 03.38 basic table; ç, ã, õ, á, í, ó, ú, ê, ô are not.
    assert sms_segments("Olá").encoding == "UCS-2"
    assert sms_segments("café à Ç Ü ñ").encoding == "GSM-7"


# -- UCS-2: 70 in one segment, 67 per segment once split ---------------------------------------


@pytest.mark.parametrize(
    ("length", "segments"),
    [(1, 1), (70, 1), (71, 2), (134, 2), (135, 3), (201, 3), (202, 4)],
)
def test_one_accent_makes_the_whole_text_ucs2_70_then_67_per_segment(
    length: int, segments: int
) -> None:
    text = "ç" + "a" * (length - 1)
    result = sms_segments(text)
    assert (result.encoding, result.units, result.segments) == ("UCS-2", length, segments)


def test_an_accented_text_of_69_letters_fits_one_segment_and_71_does_not() -> None:
    assert sms_segments("locação " + "x" * 61).segments == 1  # 69 characters
    assert sms_segments("locação " + "x" * 63).segments == 2  # 71 characters


def test_an_emoji_takes_two_ucs2_code_units() -> None:
    assert sms_segments("😀" * 35).units == 70
    assert sms_segments("😀" * 35).segments == 1
    assert sms_segments("😀" * 36).segments == 2


def test_an_emoji_is_never_split_between_two_segments() -> None:
    # 67 emoji are 134 code units, but a segment of 67 units holds only 33 whole emoji.
    assert sms_segments("😀" * 67).segments == 3
    assert sms_segments("😀" * 66).segments == 2


# -- GSM-7 extension characters count two ------------------------------------------------------


@pytest.mark.parametrize("char", list("€[]{}~^|\\"))
def test_a_gsm_extension_character_counts_two_septets(char: str) -> None:
    assert sms_segments("a" * 158 + char).units == 160
    assert sms_segments("a" * 158 + char).segments == 1
    assert sms_segments("a" * 159 + char).encoding == "GSM-7"
    assert sms_segments("a" * 159 + char).segments == 2


def test_an_extension_character_is_never_split_between_two_segments() -> None:
    # 306 septets would fill two segments of 153, but "€" cannot start in one and end in the
    # next: the carrier moves it whole into the second, and the last "a" needs a third.
    text = "a" * 152 + "€" + "a" * 152
    assert sms_segments(text).units == 306
    assert sms_segments(text).segments == 3


# -- the signature request text ----------------------------------------------------------------


def test_an_accented_title_is_transliterated_so_the_request_stays_gsm7_in_one_segment() -> None:
    text = compose_sms("Contrato de locação — São Paulo", LINK)
    assert text == (f"Assinatura pendente: Contrato de locacao - Sao Paulo. Assine em {LINK}")
    result = sms_segments(text)
    assert (result.encoding, result.segments) == ("GSM-7", 1)


def test_a_very_long_title_is_shortened_to_keep_the_link_whole_in_one_segment() -> None:
    title = "Instrumento particular de promessa de compra e venda de imóvel " * 8
    text = compose_sms(title, LINK)
    assert sms_segments(text).segments == 1
    assert len(text) <= 160
    assert text.endswith(f"... Assine em {LINK}")
    assert text.startswith("Assinatura pendente: Instrumento particular de promessa")


def test_a_title_full_of_extension_characters_is_cut_by_septets_not_by_characters() -> None:
    text = compose_sms("{[~]}" * 40, LINK)
    result = sms_segments(text)
    assert (result.encoding, result.segments) == ("GSM-7", 1)
    assert result.units <= 160


def test_emoji_in_a_title_become_question_marks_instead_of_forcing_ucs2() -> None:
    text = compose_sms("Contrato 😀 assinado", LINK)
    assert "Contrato ? assinado" in text
    assert sms_segments(text).encoding == "GSM-7"


def test_a_link_too_long_for_one_segment_is_sent_whole_and_charged_per_segment() -> None:
    long_link = "https://example.com/" + "x" * 200
    text = compose_sms("Contrato", long_link)
    assert long_link in text
    assert quote(Channel.SMS, text).cost == sms_segments(text).segments == 2


# -- quotes per channel ------------------------------------------------------------------------


def test_email_is_free() -> None:
    q = quote(Channel.EMAIL)
    assert (q.cost, q.segments, q.text) == (0, 1, "")
    assert not Channel.EMAIL.is_paid and not Channel.EMAIL.needs_phone


def test_whatsapp_costs_one_whatever_the_text() -> None:
    q = quote(Channel.WHATSAPP, "ç" * 500)
    assert (q.cost, q.segments) == (1, 1)
    assert Channel.WHATSAPP.is_paid and Channel.WHATSAPP.needs_phone


@pytest.mark.parametrize(
    ("text", "cost"),
    [("a" * 160, 1), ("a" * 161, 2), ("ç" * 70, 1), ("ç" * 71, 2), ("ç" * 135, 3)],
)
def test_sms_costs_one_notification_credit_per_segment_of_the_actual_text(
    text: str, cost: int
) -> None:
    q = quote(Channel.SMS, text)
    assert (q.cost, q.segments, q.text) == (cost, cost, text)


def test_the_default_sms_request_costs_one_credit() -> None:
    text = compose_sms("Contrato de locação", LINK)
    assert quote(Channel.SMS, text).cost == 1


def test_typographic_dashes_and_quotes_become_their_plain_stand_ins_in_an_sms() -> None:
    text = compose_sms("Contrato de locação — “Apto 42” … ‘fundos’", "https://x.example/a")
    assert "Contrato de locacao - \"Apto 42\" ... 'fundos'" in text
    assert "?" not in text
    assert sms_segments(text).encoding == "GSM-7"
