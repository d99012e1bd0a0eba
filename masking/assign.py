"""Choosing proxy numbers: the pure rule that keeps routing unambiguous.

An inbound call or text is routed by (caller's real number, proxy number called).
So a participant must never hold the same proxy number in two open sessions;
two participants of one session may share a number. Within that rule we prefer
a number in the participant's own country, then the least used one.
"""

from __future__ import annotations

from collections.abc import Mapping, Set
from dataclasses import dataclass

from rules.phone import country_of


@dataclass(frozen=True)
class Exhausted:
    """No number satisfies the rule; `needed` is the pool size that would have served this request."""

    needed: int
    available: int


def choose(pool: Mapping[str, str], held: Set[str], country: str, usage: Mapping[str, int] | None = None) -> str | None:
    """A proxy number for one participant: not in `held`, same country preferred, least used, then lowest."""
    usage = usage or {}
    free = [n for n in pool if n not in held]
    if not free:
        return None
    return min(free, key=lambda n: (pool[n] != country, usage.get(n, 0), n))


def assign(
    pool: Mapping[str, str], held_a: Set[str], held_b: Set[str], phones: tuple[str, str],
    usage: Mapping[str, int] | None = None,
) -> tuple[str, str] | Exhausted:  # fmt: skip
    """Proxy numbers for both participants of a new session, or why there are none."""
    first = choose(pool, held_a, country_of(phones[0]), usage)
    second = choose(pool, held_b, country_of(phones[1]), usage)
    if first is None or second is None:
        return Exhausted(needed=max(len(held_a), len(held_b)) + 1, available=len(pool))
    return first, second
