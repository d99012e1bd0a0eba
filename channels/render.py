"""Rendering a template's parts for one channel and locale.

Templates are operator-edited files (layout in docs/templates.md and
rules/catalog.py). Rendering is sandboxed Jinja2 with strict undefined
variables (channels/templating.py): intent data are values, never template
code, and a variable the intent lacks is a clear error on the delivery. Dates
and numbers are formatted for the recipient (channels/formatting.py); each
channel's limits are checked on the result (channels/limits.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import TemplateError
from jinja2.sandbox import SandboxedEnvironment

from channels import limits
from channels.formatting import formatting
from channels.sms_encoding import SmsInfo
from channels.templating import PARTS, Environments, RenderError, line_of, naming, required
from rules.intent import Intent, Person
from rules.model import Channel
from rules.template_options import DEFAULT_LOCALE, OptionsError, TemplateOptions, read_options

__all__ = ["PARTS", "RenderError", "Rendered", "Renderer", "UnknownTemplate", "context_for", "locale_chain"]
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


class UnknownTemplate(RenderError):
    """No template of that name (no folder)."""


@dataclass(frozen=True)
class Rendered:
    """What would be sent: the parts of one channel, in the locale the fallback chain chose."""

    template: str
    channel: Channel
    locale: str
    parts: dict[str, str]
    sms: SmsInfo | None = None  # for an SMS: encoding, segments, whether it was cut to fit

    def as_dict(self) -> dict[str, Any]:
        """The JSON shape of `parley templates render --json` and POST /v1/templates/{name}/preview."""
        return {
            "template": self.template,
            "channel": self.channel.value,
            "locale": self.locale,
            "parts": self.parts,
            "sms": self.sms.as_dict() if self.sms else None,
        }


def locale_chain(locale: str, default: str = DEFAULT_LOCALE) -> list[str]:
    """`de-AT` -> [de-AT, de, en]: most specific first, the template's default last."""
    parts = locale.replace("_", "-").split("-")
    chain = ["-".join(parts[:n]) for n in range(len(parts), 0, -1)]
    return [*dict.fromkeys([*chain, default])]


class Renderer:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.envs = Environments(root)

    def options(self, template: str) -> TemplateOptions:
        folder = self.folder(template)
        meta = folder / "template.yaml"
        try:
            return _options(folder, meta.stat().st_mtime_ns if meta.is_file() else 0)
        except OptionsError as exc:
            raise RenderError(f"template {template!r} has an invalid {meta}: {exc}") from None

    def folder(self, template: str) -> Path:
        folder = self.root / template
        if not _NAME.match(template) or ".." in template or not folder.is_dir():
            raise UnknownTemplate(f"unknown template {template!r} (no folder {folder})")
        return folder

    def render(
        self, template: str, channel: Channel, intent: Intent, target: Person | None, locale: str | None = None
    ) -> Rendered:
        """The parts for the person reached (the recipient for destinations), in their locale or `locale`."""
        who = target or intent.recipient
        options = self.options(template)
        wanted = locale or who.locale
        chosen = self.pick_locale(template, channel, wanted, options.default_locale)
        context = context_for(intent, who)
        with formatting([wanted, chosen], who.timezone), naming(context):
            parts = self._parts(template, chosen, channel, context)
        sms = limits.finish(channel, parts, options.sms)
        return Rendered(template, channel, chosen, parts, sms)

    def pick_locale(self, template: str, channel: Channel, wanted: str, default: str) -> str:
        """The first locale folder in the fallback chain that has every required part of `channel`."""
        folder = self.folder(template)
        folders = {_norm(p.name): p.name for p in folder.iterdir() if p.is_dir()}
        for tag in locale_chain(wanted, default):
            found = folders.get(_norm(tag))
            if found and all((folder / found / file).is_file() for file in required(channel)):
                return found
        files = " and ".join(required(channel))
        raise RenderError(
            f"template {template!r} has no {channel} part ({files}) for locale {wanted!r} or its fallbacks "
            f"({', '.join(locale_chain(wanted, default))})"
        )

    def _parts(self, template: str, locale: str, channel: Channel, context: dict[str, Any]) -> dict[str, str]:
        rendered: dict[str, str] = {}
        for part, file in PARTS[channel].items():
            name = f"{template}/{locale}/{file}"
            if not (self.root / name).is_file():
                continue
            text = self._part(name, file, context)
            if not text and not part.endswith("?"):
                raise RenderError(f"{name}: rendered to nothing")
            if text:
                rendered[part.rstrip("?")] = text
        return rendered

    def _part(self, name: str, file: str, context: dict[str, Any]) -> str:
        env = self.envs.for_file(file)
        try:
            if file == "push.data.yaml":
                return self._push_data(env, name, context)
            return env.get_template(name).render(context).strip()
        except RenderError:
            raise
        except Exception as exc:  # operator-written template code: any failure is the template's
            line = line_of(exc, str(self.root / name))
            message = exc.message if isinstance(exc, TemplateError) and exc.message else f"{type(exc).__name__}: {exc}"
            raise RenderError(f"{name}{f':{line}' if line else ''}: {message}") from None

    def _push_data(self, env: SandboxedEnvironment, name: str, context: dict[str, Any]) -> str:
        source = (self.root / name).read_text(encoding="utf-8")
        rendered = {}
        for key, value in limits.push_data_source(source, name).items():
            try:
                rendered[key] = env.from_string(value).render(context).strip()
            except TemplateError as exc:
                raise RenderError(f"{name}: {key}: {exc.message or type(exc).__name__}") from None
        return limits.push_data(rendered)


def _norm(tag: str) -> str:
    return tag.replace("_", "-").lower()


@lru_cache(maxsize=256)
def _options(folder: Path, mtime_ns: int) -> TemplateOptions:
    return read_options(folder)


def context_for(intent: Intent, who: Person) -> dict[str, Any]:
    """What a template may use. Never a real phone number or email of anyone."""

    def public(person: Person | None) -> dict[str, Any] | None:
        return None if person is None else {"id": person.id, "locale": person.locale, "timezone": person.timezone}

    return {
        "event": intent.event,
        "data": intent.data,
        "recipient": public(intent.recipient),
        "counterpart": public(intent.counterpart),
        "to": public(who),
    }
