"""`parley templates render`: exactly what a template would send, part by part."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from channels.rendering.check import EXAMPLE
from channels.rendering.render import Renderer, RenderError, locale_chain
from rules.intent import Intent
from rules.model import Channel
from rules.problems import field_problem


def register(commands: Any) -> None:
    templates = commands.add_parser("templates", help="preview message templates")
    sub = templates.add_subparsers(dest="templates_command", required=True, metavar="SUBCOMMAND")
    render = sub.add_parser("render", help="print what a template would send on one channel, part by part")
    render.add_argument("name", help="template name (a folder in the templates folder)")
    render.add_argument("--channel", required=True, choices=[c.value for c in Channel])
    render.add_argument("--locale", help="render for this locale (default: the intent recipient's locale)")
    render.add_argument(
        "--data", type=Path, help=f"intent JSON, as POSTed to /v1/notifications (default: the template's {EXAMPLE})"
    )
    render.add_argument("--templates", type=Path, default=Path("templates"), help="templates folder (templates/)")
    render.add_argument("--json", action="store_true", help="print one JSON object")
    render.set_defaults(handler=run_render)


def _fail(message: str) -> int:
    print(f"parley templates render: {message}", file=sys.stderr)
    return 1


def read_intent(file: Path) -> Intent:
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"{file}: cannot read: {exc.strerror}") from None
    try:
        return Intent.model_validate_json(text)
    except ValidationError as exc:
        lines = [f"{file}: {p['path']}: {p['message']}" for p in map(field_problem, exc.errors())]
        raise ValueError("invalid intent\n" + "\n".join(lines)) from None


def run_render(args: argparse.Namespace) -> int:
    renderer = Renderer(args.templates)
    channel = Channel(args.channel)
    try:
        renderer.folder(args.name)
        intent = read_intent(args.data or args.templates / args.name / EXAMPLE)
        rendered = renderer.render(args.name, channel, intent, None, locale=args.locale)
    except (ValueError, RenderError) as exc:
        return _fail(str(exc))
    wanted = args.locale or intent.recipient.locale
    if args.json:
        print(json.dumps(rendered.as_dict(), indent=2, ensure_ascii=False))
        return 0
    default = renderer.options(args.name).default_locale
    chain = ", ".join(locale_chain(wanted, default))
    print(f"template {rendered.template}, channel {channel}, locale {rendered.locale} (asked {wanted}: {chain})")
    if rendered.sms is not None:
        sms = rendered.sms
        cut = ", truncated to fit" if sms.truncated else ""
        plural = "s" if sms.segments != 1 else ""
        kind = "septets" if sms.encoding == "GSM-7" else "UTF-16 units"
        units = f" ({sms.units} {kind})" if sms.units != sms.characters else ""
        print(f"sms: {sms.encoding}, {sms.segments} segment{plural}, {sms.characters} characters{units}{cut}")
    for part, text in rendered.parts.items():
        print(f"--- {part}")
        print(text)
    return 0
