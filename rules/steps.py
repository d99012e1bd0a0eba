"""Validation of one policy's `steps` list into engine steps."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rules import checks
from rules.catalog import Catalog
from rules.model import PERSON_TARGETS, RECIPIENT, Action, Channel, Destination, Repeat, Step, Wait
from rules.problems import Problems
from rules.yamlpos import Path

KINDS = ("send", "first_of", "call", "wait")
_COMMON = ("template", "to", "urgent", "repeat")
ALLOWED = {
    "send": ("send", *_COMMON),
    "first_of": ("first_of", *_COMMON),
    "call": ("call", "template", "bridge", "urgent", "repeat"),
    "wait": ("wait",),
}
MAX_REPEAT = 100


@dataclass
class StepContext:
    problems: Problems
    destinations: dict[str, Destination]
    catalog: Catalog
    default_template: str | None
    fallbacks: dict[Channel, Channel]
    # Problems already reported elsewhere, so that steps do not repeat them as something else:
    broken_destinations: frozenset[str] = frozenset()  # declared with a bad channel or address
    policy_template_invalid: bool = False  # the policy's `template` is not a name


def check_steps(ctx: StepContext, path: Path, value: Any) -> tuple[Step, ...] | None:
    p = ctx.problems
    if not isinstance(value, list) or not value:
        p.add(path, "expected a non-empty list of steps")
        return None
    steps = [_step(ctx, (*path, i), raw) for i, raw in enumerate(value)]
    ok = all(s is not None for s in steps)
    waits = [isinstance(raw, dict) and "wait" in raw and not any(k in raw for k in KINDS[:3]) for raw in value]
    if all(waits):
        p.add(path, "a policy needs at least one send, first_of or call step")
        ok = False
    elif waits[-1]:
        p.add((*path, len(value) - 1), "a policy cannot end with a wait (nothing would happen after it)")
        ok = False
    return tuple(s for s in steps if s is not None) if ok else None


def _step(ctx: StepContext, path: Path, raw: Any) -> Step | None:
    p = ctx.problems
    if not isinstance(raw, dict):
        p.add(path, f"expected a step (a mapping with one of {', '.join(KINDS)}), got {checks.describe(raw)}")
        return None
    kinds = [k for k in KINDS if k in raw]
    if len(kinds) != 1:
        found = "none" if not kinds else " and ".join(kinds)
        p.add(path, f"a step needs exactly one of {', '.join(KINDS)} (found {found})")
        return None
    kind = kinds[0]
    known = {k: v for k, v in raw.items() if k in ALLOWED[kind]}
    for key in raw.keys() - known.keys():
        if key == "bridge":
            message = f"bridge is only allowed on a call step, not on {kind}"
        else:
            message = f"unknown key {key!r} (expected one of {', '.join(ALLOWED[kind])})"
        p.add((*path, key), message, at_key=True)
    # Check what is known even when a key was rejected, so every problem shows at once.
    if kind == "wait":
        delay = checks.duration(p, (*path, "wait"), raw["wait"])
        step: Step | None = Wait(duration=delay) if delay is not None else None
    else:
        step = _action(ctx, path, kind, known)
    return step if len(known) == len(raw) else None


def _action(ctx: StepContext, path: Path, kind: str, raw: dict[str, Any]) -> Action | None:
    p = ctx.problems
    if kind == "call":
        target = _target(ctx, (*path, "call"), raw["call"])
        channels: list[Channel] | None = [Channel.CALL]
    else:
        target = _target(ctx, (*path, "to"), raw.get("to", RECIPIENT))
        channels = checks.channel_list(p, (*path, kind), raw[kind], minimum=2 if kind == "first_of" else 1)
    template = _template(ctx, path, raw)
    urgent = _flag(ctx, (*path, "urgent"), raw.get("urgent", False))
    repeat = _repeat(ctx, (*path, "repeat"), raw["repeat"]) if "repeat" in raw else None
    bridge = _bridge(ctx, (*path, "bridge"), raw.get("bridge"), target) if kind == "call" else None
    where = (*path, "template") if "template" in raw else path
    parts_ok = template is not None and _templates_exist(ctx, where, kind, str(target), channels or [], template)
    if target is None or channels is None or template is None or urgent is None or not parts_ok:
        return None
    if ("repeat" in raw and repeat is None) or (raw.get("bridge") is not None and bridge is None):
        return None
    if not _destination_fits(ctx, path, kind, target, channels):
        return None
    return Action(
        kind=kind,
        channels=tuple(channels),
        target=target,
        template=template,
        urgent=urgent,
        bridge=bridge,
        repeat=repeat,
    )


def _target(ctx: StepContext, path: Path, value: Any) -> str | None:
    known = ", ".join([*PERSON_TARGETS, *sorted(ctx.destinations)])
    if not isinstance(value, str):  # a list or mapping here is unhashable: check before the lookups
        ctx.problems.add(path, f"expected a destination (one of {known}), got {checks.describe(value)}")
        return None
    if value in PERSON_TARGETS or value in ctx.destinations:
        return value
    if value in ctx.broken_destinations:
        return None
    ctx.problems.add(path, f"unknown destination {value!r} (expected one of {known})")
    return None


def _template(ctx: StepContext, path: Path, raw: dict[str, Any]) -> str | None:
    value = raw.get("template", ctx.default_template)
    if value is None and ctx.policy_template_invalid and "template" not in raw:
        return None
    if value is None:
        ctx.problems.add(path, "missing template (set `template` on the step or on the policy)")
        return None
    if not isinstance(value, str) or not value:
        ctx.problems.add((*path, "template"), f"expected a template name, got {checks.describe(value)}")
        return None
    return value


def _flag(ctx: StepContext, path: Path, value: Any) -> bool | None:
    if not isinstance(value, bool):
        ctx.problems.add(path, f"expected true or false, got {checks.describe(value)}")
        return None
    return value


def _repeat(ctx: StepContext, path: Path, value: Any) -> Repeat | None:
    p = ctx.problems
    raw = checks.mapping(p, path, value, ("times", "every"), ("times", "every"))
    if raw is None or "times" not in raw or "every" not in raw:
        return None
    times = raw["times"]
    every = checks.duration(p, (*path, "every"), raw["every"])  # checked even when times is wrong
    if not isinstance(times, int) or isinstance(times, bool) or not 2 <= times <= MAX_REPEAT:
        p.add((*path, "times"), f"expected a whole number of runs from 2 to {MAX_REPEAT}, got {checks.describe(times)}")
        return None
    return Repeat(times=times, every=every) if every is not None else None


def _bridge(ctx: StepContext, path: Path, value: Any, target: str | None) -> str | None:
    if value is None:
        return None
    if value not in PERSON_TARGETS or value == target:
        others = [t for t in PERSON_TARGETS if t != target]
        shown = repr(value) if isinstance(value, str) else checks.describe(value)
        ctx.problems.add(path, f"bridge must be {' or '.join(others)}, got {shown}")
        return None
    return str(value)


def _destination_fits(ctx: StepContext, path: Path, kind: str, target: str, channels: list[Channel]) -> bool:
    dest = ctx.destinations.get(target)
    if dest is None:
        return True
    if len(channels) != 1 or channels[0] is not dest.channel:
        where = (*path, "call" if kind == "call" else "to")
        ctx.problems.add(
            where, f"destination {target!r} is a {dest.channel} destination; this step uses {', '.join(channels)}"
        )
        return False
    return True


def _templates_exist(
    ctx: StepContext, where: Path, kind: str, target: str, channels: list[Channel], template: str
) -> bool:
    """Every channel the step may use, fallbacks included, needs its template part."""
    if template not in ctx.catalog.templates:
        ctx.problems.add(where, str(ctx.catalog.missing_part(template, Channel.SMS)))
        return False
    needed: dict[Channel, Channel | None] = {}  # channel -> the channel that falls back to it
    for ch in channels:
        current: Channel | None = ch
        previous: Channel | None = None
        # first_of lists its own order and destinations have one fixed address: no fallback.
        follow = kind != "first_of" and target not in ctx.destinations
        while current is not None and current not in needed:
            needed[current] = previous
            previous, current = current, ctx.fallbacks.get(current) if follow else None
    ok = True
    for ch, source in needed.items():
        reason = ctx.catalog.missing_part(template, ch)
        if reason is not None:
            suffix = "" if source is None else f"; needed because {source} falls back to {ch}"
            ctx.problems.add(where, reason + suffix)
            ok = False
    return ok
