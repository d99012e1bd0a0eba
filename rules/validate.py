"""Validate a rules document completely, then compile it for the engine.

Every problem is collected (none stops the check early) and reported with its
file, line, column and path. Only a document with no problem compiles.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path as FsPath
from typing import Any

import yaml

from rules import checks
from rules.catalog import Catalog
from rules.model import PERSON_TARGETS, Action, Channel, Destination, Match, Policy, QuietHours, RuleSet, StopEvent
from rules.phone import is_e164
from rules.problems import Problem, Problems, RulesError
from rules.steps import StepContext, check_steps
from rules.yamlpos import MAX_YAML_BYTES, Path, YamlSyntaxError, check_size, format_path, load_located, load_plain

TOP_KEYS = ("version", "defaults", "destinations", "policies")
POLICY_KEYS = ("name", "description", "match", "until", "quiet_hours", "template", "fallback", "steps")
DEFAULT_KEYS = ("until", "quiet_hours", "fallback")
PERSON_FIELDS = ("id", "email", "phone", "slack", "whatsapp", "locale", "timezone")
WHERE_ROOTS = ("event", "correlation_key", "data.", "recipient.", "counterpart.")
DEFAULT_UNTIL = (StopEvent.RESPONDED, StopEvent.ACKNOWLEDGED)
_SLACK_ADDRESS = re.compile(r"^(#[a-z0-9][a-z0-9_-]{0,79}|[CGUD][A-Z0-9]{6,})$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


@dataclass
class _Scope:
    """What every policy of one document is checked against."""

    p: Problems
    catalog: Catalog
    defaults: Defaults
    destinations: dict[str, Destination]
    broken_destinations: frozenset[str] = frozenset()  # declared, but with a problem reported there


@dataclass
class Defaults:
    until: tuple[StopEvent, ...] = DEFAULT_UNTIL
    quiet_hours: QuietHours | None = None
    fallback: dict[Channel, Channel] | None = None


TemplateCheck = Callable[[Catalog], tuple[list[Problem], list[Problem]]]
"""(problems, warnings) for every template of a catalog. The renderer owns template syntax, so the
checker is given by the caller (gateway/rulesets.py passes channels/rendering/check.py): rules/
depends on nothing else of Parley."""


def load_rules(
    file: FsPath,
    templates: FsPath | None = None,
    warnings: list[Problem] | None = None,
    *,
    check_templates: TemplateCheck | None = None,
    follow: bool = True,
) -> RuleSet:
    """Read and validate a rules file (standalone, or the `rules` section of config.yaml) and, given a
    `check_templates`, the templates folder with it; its warnings go to `warnings`."""
    text = _read(file)
    folder, rules_file = _config_settings(text)
    if templates is None:
        templates = file.parent / folder
    if rules_file is not None and follow:  # config.yaml whose `rules:` names a file: check that file (only once)
        return load_rules(file.parent / rules_file, templates, warnings, check_templates=check_templates, follow=False)
    catalog = Catalog.scan(templates)
    template_problems, template_warnings = check_templates(catalog) if check_templates else ([], [])
    try:
        rules = compile_rules(text, str(file), catalog)
    except RulesError as exc:
        raise RulesError([*exc.problems, *template_problems]) from None
    if template_problems:
        raise RulesError(template_problems)
    if warnings is not None:
        warnings.extend(template_warnings)
    return rules


def _read(file: FsPath) -> str:
    """The file's text; a file over the YAML size limit is refused after reading just past the limit."""
    with file.open("rb") as handle:
        data = handle.read(MAX_YAML_BYTES + 1)
    try:
        check_size(len(data))
        return data.decode("utf-8")
    except YamlSyntaxError as exc:
        raise RulesError([_yaml_problem(exc, str(file))]) from None
    except UnicodeDecodeError as exc:
        line, column = data.count(b"\n", 0, exc.start) + 1, exc.start - data.rfind(b"\n", 0, exc.start)
        problem = Problem(line, column, "(document)", f"not UTF-8 text (byte 0x{data[exc.start]:02x})", str(file))
        raise RulesError([problem]) from None


def _config_settings(text: str) -> tuple[str, str | None]:
    """config.yaml may name its templates folder and keep its rules in a file of their own;
    a standalone rules file uses templates/ beside it."""
    try:
        loaded = load_plain(text)
    except (yaml.YAMLError, YamlSyntaxError, ValueError):
        return "templates", None  # compile_rules reports the problem with its position
    if not isinstance(loaded, dict) or "rules" not in loaded or "policies" in loaded:
        return "templates", None
    folder, rules = loaded.get("templates"), loaded.get("rules")
    return (folder if isinstance(folder, str) and folder else "templates"), (
        rules if isinstance(rules, str) and rules else None
    )


def _yaml_problem(exc: YamlSyntaxError, source: str) -> Problem:
    return Problem(exc.position.line, exc.position.column, "(document)", f"invalid YAML: {exc.message}", source)


def compile_rules(text: str, source: str, catalog: Catalog) -> RuleSet:
    try:
        located = load_located(text)
    except YamlSyntaxError as exc:
        raise RulesError([_yaml_problem(exc, source)]) from None
    p = Problems(located, source)
    for dup in located.duplicate_keys:
        p.add(dup, f"key {dup[-1]!r} appears more than once", at_key=True)
    rules = _document(p, located.data, catalog)
    if p or rules is None:
        raise RulesError(p.sorted())
    return rules


def _document(p: Problems, data: Any, catalog: Catalog) -> RuleSet | None:
    base: Path = ()
    if isinstance(data, dict) and "rules" in data and "policies" not in data:
        base, data = ("rules",), data["rules"]  # the rules section of config.yaml
    doc = checks.mapping(p, base, data, TOP_KEYS, ("version", "policies"))
    if doc is None:
        return None
    version = doc.get("version", 1)
    if not isinstance(version, int) or isinstance(version, bool):
        p.add((*base, "version"), f"expected version: 1, got {checks.describe(version)}")
    elif version != 1:
        p.add((*base, "version"), f"unsupported version {version} (this Parley reads version 1)")
    defaults = _defaults(p, (*base, "defaults"), doc.get("defaults", {}))
    raw_destinations = doc.get("destinations", {})
    destinations = _destinations(p, (*base, "destinations"), raw_destinations)
    declared = frozenset(raw_destinations) if isinstance(raw_destinations, dict) else frozenset()
    scope = _Scope(p, catalog, defaults, destinations, declared - destinations.keys() - set(PERSON_TARGETS))
    policies = _policies(scope, (*base, "policies"), doc["policies"]) if "policies" in doc else None
    if p or policies is None:
        return None
    return RuleSet(version=1, policies=tuple(policies))


def _defaults(p: Problems, path: Path, value: Any) -> Defaults:
    raw = checks.mapping(p, path, value, DEFAULT_KEYS) or {}
    result = Defaults()
    if "until" in raw:
        result.until = checks.stop_events(p, (*path, "until"), raw["until"]) or DEFAULT_UNTIL
    if raw.get("quiet_hours") is not None:
        result.quiet_hours = checks.quiet_hours(p, (*path, "quiet_hours"), raw["quiet_hours"])
    if "fallback" in raw:
        result.fallback = checks.fallback_map(p, (*path, "fallback"), raw["fallback"])
        if result.fallback:
            checks.fallback_cycles(p, (*path, "fallback"), result.fallback)
    return result


def _destinations(p: Problems, path: Path, value: Any) -> dict[str, Destination]:
    if not isinstance(value, dict):
        p.add(path, f"expected a mapping of destination names, got {checks.describe(value)}")
        return {}
    found: dict[str, Destination] = {}
    for key, raw in value.items():
        where = (*path, key)
        if checks.name(p, where, key, "destination") is None:
            continue
        if key in PERSON_TARGETS:
            p.add(where, f"{key!r} is reserved for the intent's {key}; choose another destination name", at_key=True)
            continue
        spec = checks.mapping(p, where, raw, ("channel", "address"), ("channel", "address"))
        if spec is None or "channel" not in spec or "address" not in spec:
            continue
        channel = checks.channel(p, (*where, "channel"), spec["channel"])
        if channel is not None and _address_ok(p, (*where, "address"), channel, spec["address"]):
            found[key] = Destination(name=key, channel=channel, address=str(spec["address"]))
    return found


def _address_ok(p: Problems, path: Path, channel: Channel, address: Any) -> bool:
    if not isinstance(address, str) or not address:
        p.add(path, f"expected an address, got {checks.describe(address)}")
        return False
    problem = None
    if channel is Channel.SLACK and not _SLACK_ADDRESS.match(address):
        problem = "a Slack channel (#name) or a Slack channel or user id (C…, U…)"
    elif channel is Channel.EMAIL and not _EMAIL.match(address):
        problem = "an email address"
    elif channel in (Channel.SMS, Channel.CALL, Channel.WHATSAPP) and not is_e164(address):
        problem = "a phone number in E.164 form, e.g. +14155550123"
        if channel is Channel.WHATSAPP and address.startswith("whatsapp:"):
            problem += ", without the whatsapp: prefix"
    if problem:
        p.add(path, f"invalid {channel} address {address!r} (expected {problem})")
        return False
    return True


def _policies(scope: _Scope, path: Path, value: Any) -> list[Policy] | None:
    p = scope.p
    if not isinstance(value, list) or not value:
        p.add(path, "expected a non-empty list of policies")
        return None
    seen: dict[str, int] = {}
    compiled = []
    for i, raw in enumerate(value):
        policy = _policy(scope, (*path, i), raw)
        name = raw.get("name") if isinstance(raw, dict) else None
        if isinstance(name, str):
            if name in seen:
                p.add(
                    (*path, i, "name"),
                    f"duplicate policy name {name!r} (first used by {format_path((*path, seen[name]))})",
                )
            seen.setdefault(name, i)
        compiled.append(policy)
    return [c for c in compiled if c is not None] if all(compiled) else None


def _policy(scope: _Scope, path: Path, raw: Any) -> Policy | None:
    p, defaults, destinations = scope.p, scope.defaults, scope.destinations
    spec = checks.mapping(p, path, raw, POLICY_KEYS, ("name", "steps"))
    if spec is None:
        return None
    name = checks.name(p, (*path, "name"), spec["name"], "policy") if "name" in spec else None
    match = _match(p, (*path, "match"), spec["match"]) if "match" in spec else Match(event="")
    until = checks.stop_events(p, (*path, "until"), spec["until"]) if "until" in spec else defaults.until
    quiet = defaults.quiet_hours
    if "quiet_hours" in spec:
        quiet = (
            None
            if spec["quiet_hours"] is None or spec["quiet_hours"] is False
            else checks.quiet_hours(p, (*path, "quiet_hours"), spec["quiet_hours"])
        )
    fallbacks = _fallbacks(p, path, spec, defaults)
    template = spec.get("template")
    if template is not None and not isinstance(template, str):
        p.add((*path, "template"), f"expected a template name, got {checks.describe(template)}")
    ctx = StepContext(
        p,
        destinations,
        scope.catalog,
        template if isinstance(template, str) else None,
        fallbacks or {},
        broken_destinations=scope.broken_destinations,
        policy_template_invalid=template is not None and not isinstance(template, str),
    )
    steps = check_steps(ctx, (*path, "steps"), spec["steps"]) if "steps" in spec else None
    if None in (name, match, until, steps, fallbacks) or (
        "quiet_hours" in spec and spec["quiet_hours"] and quiet is None
    ):
        return None
    assert name is not None and match is not None and until is not None and steps is not None and fallbacks is not None
    used = {s.target for s in steps if isinstance(s, Action)}
    dests = tuple(d for n, d in sorted(destinations.items()) if n in used)
    return Policy(
        name=name,
        match=match,
        until=until,
        quiet_hours=quiet,
        fallback=tuple(fallbacks.items()),
        steps=steps,
        destinations=dests,
    )


def _fallbacks(p: Problems, path: Path, spec: dict[str, Any], defaults: Defaults) -> dict[Channel, Channel] | None:
    if "fallback" not in spec:
        return dict(defaults.fallback or {})
    own = checks.fallback_map(p, (*path, "fallback"), spec["fallback"])
    if own is None:
        return None
    merged = {**(defaults.fallback or {}), **own}
    return merged if checks.fallback_cycles(p, (*path, "fallback"), merged) else None


def _match(p: Problems, path: Path, value: Any) -> Match | None:
    spec = checks.mapping(p, path, value, ("event", "where"), ("event",))
    if spec is None:
        return None
    event = spec.get("event")
    ok = "event" in spec  # a missing event is already reported; the where conditions are still checked
    if ok and (not isinstance(event, str) or not event or not re.fullmatch(r"[A-Za-z0-9_.:*?\[\]-]+", event)):
        p.add(
            (*path, "event"),
            f"expected an event name or glob such as inquiry.created or inquiry.*, got {checks.describe(event)}",
        )
        ok = False
    where = spec.get("where", {})
    if not isinstance(where, dict):
        p.add((*path, "where"), f"expected a mapping of intent field to value, got {checks.describe(where)}")
        return None
    for key, wanted in where.items():
        if not (key in ("event", "correlation_key") or key.startswith(WHERE_ROOTS[2:])) or key.endswith("."):
            p.add(
                (*path, "where", key),
                f"unknown intent field {key!r} (expected event, correlation_key, data.…, recipient.… or counterpart.…)",
                at_key=True,
            )
            ok = False
        elif key.startswith(WHERE_ROOTS[3:]) and key.split(".", 1)[1] not in PERSON_FIELDS:
            fields = ", ".join(PERSON_FIELDS)
            p.add((*path, "where", key), f"unknown field {key!r} (a person has {fields})", at_key=True)
            ok = False
        elif wanted is not None and not isinstance(wanted, (str, int, float, bool)):
            # YAML reads 2026-11-22 as a date, which an intent (JSON) never holds: it could never match.
            p.add(
                (*path, "where", key),
                f"a where condition compares with one value (text, number or boolean), got {checks.describe(wanted)}; quote it to compare text",
            )
            ok = False
    if ok and isinstance(event, str):
        return Match(event=event, where=tuple(sorted(where.items())))
    return None
