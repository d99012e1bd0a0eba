"""How an SMS body travels: GSM-7 or UCS-2, and how many segments it takes.

Pure functions, no I/O. The rules (3GPP TS 23.038 / 23.040):

- GSM-7 when every character is in the GSM default alphabet or its extension
  table; an extension character (`€ [ ] { } \\ ~ ^ |` and form feed) is sent as
  escape + character and counts as 2 septets. One segment holds 160 septets; a
  longer message is split into segments of 153 (7 septets go to the header),
  and an escape pair is never split across two segments.
- UCS-2 (UTF-16) otherwise: one segment holds 70 code units, a longer message
  67 per segment; a character outside the BMP (most emoji) is 2 units and is
  never split either.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Encoding = Literal["GSM-7", "UCS-2"]

GSM_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM_EXTENSION = frozenset("\f^{}\\[~]|€")

SINGLE = {"GSM-7": 160, "UCS-2": 70}
MULTI = {"GSM-7": 153, "UCS-2": 67}
ELLIPSIS = {"GSM-7": "...", "UCS-2": "…"}


@dataclass(frozen=True)
class SmsInfo:
    encoding: Encoding
    segments: int
    units: int  # septets for GSM-7, UTF-16 code units for UCS-2
    characters: int
    truncated: bool = False

    def as_dict(self) -> dict[str, object]:
        return {
            "encoding": self.encoding,
            "segments": self.segments,
            "units": self.units,
            "characters": self.characters,
            "truncated": self.truncated,
        }


def encoding_of(text: str) -> Encoding:
    return "GSM-7" if all(c in GSM_BASIC or c in GSM_EXTENSION for c in text) else "UCS-2"


def cost(char: str, encoding: Encoding) -> int:
    """Septets (GSM-7) or UTF-16 code units (UCS-2) one character takes."""
    if encoding == "GSM-7":
        return 2 if char in GSM_EXTENSION else 1
    return 2 if ord(char) > 0xFFFF else 1


def segments_for(costs: list[int], encoding: Encoding) -> int:
    """Segments for characters of these costs, packed in order without splitting one."""
    total = sum(costs)
    if total == 0:
        return 0  # an empty body is not sent
    if total <= SINGLE[encoding]:
        return 1
    limit, count, used = MULTI[encoding], 1, 0
    for c in costs:
        if used + c > limit:
            count, used = count + 1, 0
        used += c
    return count


def measure(text: str) -> SmsInfo:
    encoding = encoding_of(text)
    costs = [cost(c, encoding) for c in text]
    return SmsInfo(encoding, segments_for(costs, encoding), sum(costs), len(text))


def fit(text: str, max_segments: int) -> tuple[str, SmsInfo]:
    """The text cut (at a word boundary when one is near) with an ellipsis to fit in `max_segments`."""
    info = measure(text)
    if info.segments <= max_segments:
        return text, info
    ellipsis = ELLIPSIS[info.encoding]
    # The longest prefix that still fits, by bisection (fitting is monotonic). The ellipsis keeps the
    # encoding: "..." is GSM-7, "…" is not, so the cut text is sent as the whole would have been.
    low, high = 0, len(text)
    while low < high:
        mid = (low + high + 1) // 2
        if measure(text[:mid].rstrip() + ellipsis).segments <= max_segments:
            low = mid
        else:
            high = mid - 1
    cut = text[:low]
    space = cut.rfind(" ")
    if space >= len(cut) - 15 and space > 0:  # prefer not to cut a word in half
        cut = cut[:space]
    shortened = cut.rstrip() + ellipsis
    return shortened, _truncated(measure(shortened))


def _truncated(info: SmsInfo) -> SmsInfo:
    return SmsInfo(info.encoding, info.segments, info.units, info.characters, truncated=True)
