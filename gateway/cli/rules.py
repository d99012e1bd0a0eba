"""`parley rules check` and `parley simulate`."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gateway.cli.templates import read_intent
from gateway.rulesets import load_rules
from rules.durations import parse_duration
from rules.model import Channel, RuleSet
from rules.problems import Problem, RulesError
from rules.simulate import simulate


def register(commands: Any) -> None:
    rules = commands.add_parser("rules", help="check a rules document")
    rules_sub = rules.add_subparsers(dest="rules_command", required=True, metavar="SUBCOMMAND")
    check = rules_sub.add_parser(
        "check", help="validate a rules file or config.yaml and its templates; print every problem and warning"
    )
    check.add_argument("file", type=Path)
    check.add_argument("--templates", type=Path, help="templates folder (default: templates/ beside FILE)")
    check.set_defaults(handler=run_check)

    sim = commands.add_parser("simulate", help="print the timeline an intent would get")
    sim.add_argument("--rules", type=Path, required=True, help="rules file or config.yaml")
    sim.add_argument("--intent", type=Path, required=True, help="intent JSON, as POSTed to /v1/notifications")
    sim.add_argument("--at", help="start time, ISO-8601 (default: now)")
    sim.add_argument("--respond-at", help="when the recipient responds: a duration after --at (20m) or ISO-8601")
    sim.add_argument(
        "--fail", action="append", default=[], metavar="CHANNEL", help="make a channel fail permanently (repeatable)"
    )
    sim.add_argument("--templates", type=Path, help="templates folder (default: templates/ beside the rules file)")
    sim.add_argument("--json", action="store_true", help="print one JSON object")
    sim.set_defaults(handler=run_simulate)


def _load(file: Path, templates: Path | None, warnings: list[Problem] | None = None) -> RuleSet | None:
    try:
        return load_rules(file, templates, warnings)
    except RulesError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        count = len(exc.problems)
        print(f"{file}: {count} problem{'s' if count != 1 else ''}; rules not valid", file=sys.stderr)
    except OSError as exc:
        print(f"{file}: cannot read: {exc.strerror}", file=sys.stderr)
    return None


def run_check(args: argparse.Namespace) -> int:
    warnings: list[Problem] = []
    rules = _load(args.file, args.templates, warnings)
    if rules is None:
        return 1
    for warning in warnings:  # the rules are valid; these are worth a look (docs/templates.md)
        print(f"{warning.source}:{warning.line}:{warning.column}: warning: {warning.message}", file=sys.stderr)
    names = ", ".join(p.name for p in rules.policies)
    count = len(rules.policies)
    print(f"{args.file}: ok: {count} polic{'ies' if count != 1 else 'y'} ({names})")
    return 0


def _fail(message: str) -> int:
    print(f"parley simulate: {message}", file=sys.stderr)
    return 1


def _moment(text: str, what: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{what}: {text!r} is neither a duration (20m) nor an ISO-8601 time") from None
    if moment.tzinfo is None:
        raise ValueError(f"{what}: {text!r} has no timezone; add Z or an offset such as +01:00")
    return moment.astimezone(UTC)


def run_simulate(args: argparse.Namespace) -> int:
    rules = _load(args.rules, args.templates)
    if rules is None:
        return 1
    try:
        intent = read_intent(args.intent)
        start = _moment(args.at, "--at") if args.at else datetime.now(UTC)
        respond_at = _respond_at(args.respond_at, start)
        fail = [Channel(c) for c in args.fail if c in set(Channel)]
        unknown = [c for c in args.fail if c not in set(Channel)]
        if unknown:
            raise ValueError(f"--fail: unknown channel {unknown[0]!r} (expected one of {', '.join(Channel)})")
    except ValueError as exc:
        return _fail(str(exc))
    policy = rules.select(intent)
    if policy is None:
        if intent.policy:
            return _fail(f"the intent names policy {intent.policy!r}, which {args.rules} does not define")
        return _fail(
            f"no policy matches event {intent.event!r} (policies: {', '.join(p.name for p in rules.policies)})"
        )
    timeline = simulate(policy, intent, start, respond_at=respond_at, fail=fail)
    if args.json:
        print(json.dumps({"policy": policy.name, "timeline": timeline}, indent=2))
    else:
        _print_timeline(policy.name, intent.event, timeline)
    return 0


def _respond_at(text: str | None, start: datetime) -> datetime | None:
    if text is None:
        return None
    try:
        return start + parse_duration(text)
    except ValueError:
        return _moment(text, "--respond-at")


def _print_timeline(policy: str, event: str, timeline: list[dict[str, Any]]) -> None:
    print(f"policy {policy} (event {event})")
    for entry in timeline:
        head = f"{entry['at']:<25} "
        if entry["action"] in ("stop", "complete"):
            reason = f" ({entry['reason']})" if entry["reason"] else ""
            print(f"{head}{entry['action']}{reason}")
            continue
        details = [f"template {entry['template']}"]
        if entry.get("outcome") == "failed":
            details.append("FAILED")
        if entry["reason"]:
            details.append(str(entry["reason"]))
        if entry.get("instead_of"):
            details.append(f"instead of {entry['instead_of']}")
        if entry.get("deferred_from"):
            details.append(f"deferred from {entry['deferred_from']}")
        if entry.get("bridge"):
            details.append(f"bridge to {entry['bridge']}")
        print(
            f"{head}step {entry['step']:<3} {entry['action']:<5} {entry['channel']:<6} -> {entry['to']:<12} {'; '.join(details)}"
        )
