"""SMS encoding and segments (channels/rendering/sms_encoding.py) with known vectors, and the segment limit."""

from __future__ import annotations

import pytest

from channels.rendering.parts import sms_body
from channels.rendering.sms_encoding import GSM_BASIC, GSM_EXTENSION, encoding_of, fit, measure
from channels.rendering.templating import RenderError
from rules.template_options import SmsOptions


@pytest.mark.parametrize(
    ("text", "encoding", "segments", "units"),
    [
        ("", "GSM-7", 0, 0),
        ("a", "GSM-7", 1, 1),
        ("a" * 160, "GSM-7", 1, 160),
        ("a" * 161, "GSM-7", 2, 161),
        ("a" * 306, "GSM-7", 2, 306),  # 2 x 153
        ("a" * 307, "GSM-7", 3, 307),
        ("a" * 459, "GSM-7", 3, 459),
        ("a" * 460, "GSM-7", 4, 460),
        ("你" * 70, "UCS-2", 1, 70),
        ("你" * 71, "UCS-2", 2, 71),
        ("你" * 134, "UCS-2", 2, 134),  # 2 x 67
        ("你" * 135, "UCS-2", 3, 135),
        ("a" * 69 + "ç", "UCS-2", 1, 70),  # ç is not GSM (only Ç is): the whole message is UCS-2
        ("a" * 70 + "ç", "UCS-2", 2, 71),
        ("€" * 80, "GSM-7", 1, 160),  # extension table: 2 septets each
        ("€" * 81, "GSM-7", 2, 162),
        ("a" * 159 + "{", "GSM-7", 2, 161),
        ("a" * 158 + "}", "GSM-7", 1, 160),
        ("😀" * 35, "UCS-2", 1, 70),  # outside the BMP: a surrogate pair, 2 units each
        ("😀" * 36, "UCS-2", 2, 72),
        ("Grüße aus Köln: 12 € für 3 Äpfel", "GSM-7", 1, 33),
    ],
    ids=lambda v: v if isinstance(v, (int, str)) and len(str(v)) < 12 else None,
)
def test_known_vectors(text: str, encoding: str, segments: int, units: int) -> None:
    info = measure(text)
    assert (info.encoding, info.segments, info.units) == (encoding, segments, units)
    assert info.characters == len(text)


def test_an_escape_pair_is_never_split_across_segments() -> None:
    # 152 plain septets, then an extension character: it cannot take the 153rd septet of segment 1
    text = "a" * 152 + "€" + "a" * 152
    assert measure(text).units == 306
    assert measure(text).segments == 3  # a naive 306 / 153 would say 2


def test_a_surrogate_pair_is_never_split_across_segments() -> None:
    text = "你" * 66 + "😀" + "你" * 66
    assert measure(text).units == 134
    assert measure(text).segments == 3  # a naive 134 / 67 would say 2


def test_the_alphabets_are_the_3gpp_tables() -> None:
    assert len(GSM_BASIC) == 127  # 128 code points less the escape
    assert len(GSM_EXTENSION) == 10  # form feed ^ { } \ [ ~ ] | €
    assert encoding_of("@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ!¤§¿¡äöñüàÄÖÑÜ") == "GSM-7"
    assert encoding_of("`") == "UCS-2"


@pytest.mark.parametrize(
    ("text", "max_segments", "ellipsis"),
    [("word " * 100, 2, "..."), ("你好 " * 100, 1, "…"), ("a" * 1000, 3, "...")],
)
def test_fit_cuts_with_an_ellipsis_in_the_same_encoding(text: str, max_segments: int, ellipsis: str) -> None:
    cut, info = fit(text, max_segments)
    assert cut.endswith(ellipsis) and info.truncated
    assert info.segments <= max_segments
    assert info.encoding == measure(text).encoding
    assert text.startswith(cut.removesuffix(ellipsis))
    assert len(cut) > 0.8 * {"GSM-7": 153, "UCS-2": 67}[info.encoding] * max_segments - 20


def test_fit_leaves_a_short_text_alone() -> None:
    assert fit("hello", 1) == ("hello", measure("hello"))


def test_over_the_limit_is_a_clear_error() -> None:
    with pytest.raises(RenderError, match=r"the SMS is 5 segments \(UCS-2, 300 characters\); the template allows 4"):
        sms_body("你" * 300, SmsOptions(max_segments=4))


def test_over_the_limit_is_cut_when_the_template_says_truncate() -> None:
    body, info = sms_body("你" * 300, SmsOptions(max_segments=2, truncate=True))
    assert (info.segments, info.truncated, body[-1]) == (2, True, "…")
