"""Rendering a template's parts for one channel and locale.

Templates are operator-edited files (layout in rules/catalog.py). Rendering is
sandboxed Jinja2 with strict undefined variables: intent data are values, never
template code, and a variable the intent lacks is a clear error on the delivery.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import StrictUndefined, TemplateError, select_autoescape
from jinja2.sandbox import SandboxedEnvironment

from rules.catalog import DEFAULT_LOCALE
from rules.intent import Intent, Person
from rules.model import Channel

# part name -> file, per channel; optional parts end with "?"
PARTS: dict[Channel, dict[str, str]] = {
    Channel.EMAIL: {"subject": "email.subject.txt", "text": "email.txt", "html?": "email.html"},
    Channel.SMS: {"body": "sms.txt"},
    Channel.PUSH: {"title": "push.title.txt", "body": "push.body.txt"},
    Channel.SLACK: {"text": "slack.txt"},
    Channel.CALL: {"speech": "call.txt"},
}


class RenderError(Exception):
    """A template that cannot be rendered for this intent (missing variable, syntax, no file)."""


def locale_chain(locale: str, default: str = DEFAULT_LOCALE) -> list[str]:
    """`de-AT` -> [de-AT, de, en]: most specific first, the template's default last."""
    parts = locale.replace("_", "-").split("-")
    chain = ["-".join(parts[:n]) for n in range(len(parts), 0, -1)]
    return [*dict.fromkeys([*chain, default])]


class Renderer:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.env = SandboxedEnvironment(
            undefined=StrictUndefined,
            autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
            keep_trailing_newline=False,
        )

    def render(
        self, template: str, channel: Channel, intent: Intent, target: Person | None
    ) -> tuple[str, dict[str, str]]:
        """(locale used, {part: text}) for the person reached (the recipient for destinations)."""
        who = target or intent.recipient
        context = _context(intent, who)
        for locale in locale_chain(who.locale):
            folder = self.root / template / locale
            if all((folder / f).is_file() for p, f in PARTS[channel].items() if not p.endswith("?")):
                return locale, self._render_parts(folder, channel, context)
        raise RenderError(f"template {template!r} has no {channel} part for locale {who.locale!r} or its fallbacks")

    def _render_parts(self, folder: Path, channel: Channel, context: dict[str, Any]) -> dict[str, str]:
        rendered: dict[str, str] = {}
        for part, file in PARTS[channel].items():
            path = folder / file
            if not path.is_file():
                continue
            try:
                compiled = self.env.from_string(_read(path, path.stat().st_mtime_ns))
                rendered[part.rstrip("?")] = compiled.render(context).strip()
            except TemplateError as exc:
                raise RenderError(f"{path}: {exc.message or type(exc).__name__}") from None
        return rendered


@lru_cache(maxsize=512)
def _read(path: Path, mtime_ns: int) -> str:
    return path.read_text(encoding="utf-8")


def _context(intent: Intent, who: Person) -> dict[str, Any]:
    """What a template may use. Never a real phone number or email of the other person."""

    def public(person: Person | None) -> dict[str, Any] | None:
        return None if person is None else {"id": person.id, "locale": person.locale}

    return {
        "event": intent.event,
        "data": intent.data,
        "recipient": public(intent.recipient),
        "counterpart": public(intent.counterpart),
        "to": public(who),
    }
