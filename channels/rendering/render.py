"""Rendering a template's parts for one channel and locale.

Templates are operator-edited files (layout in docs/templates.md and
rules/catalog.py). Rendering is sandboxed Jinja2 with strict undefined
variables (channels/rendering/templating.py): intent data are values, never template
code, and a variable the intent lacks is a clear error on the delivery. Dates
and numbers are formatted for the recipient (channels/rendering/formatting.py); each
channel's limits are checked on the result (channels/rendering/parts.py). One message's
render is bounded in time, work and size (channels/rendering/sandbox.py).
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jinja2 import Template, TemplateError
from jinja2.sandbox import SandboxedEnvironment

from channels.rendering import parts as limits
from channels.rendering.formatting import formatting
from channels.rendering.sandbox import Render
from channels.rendering.sms_encoding import SmsInfo
from channels.rendering.templating import PART_FILES, Environments, RenderError, line_of, required
from rules.catalog import PARTS, expected_files, sources
from rules.intent import Intent, Person
from rules.model import Channel
from rules.template_options import DEFAULT_LOCALE, OptionsError, TemplateOptions, read_options

__all__ = [
    "DELIVERY_RECHECK_S",
    "PARTS",
    "RenderError",
    "Rendered",
    "Renderer",
    "UnknownTemplate",
    "context_for",
    "locale_chain",
]
DELIVERY_RECHECK_S = 1.0  # how long a delivery process trusts its scan of a template folder
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


Signature = tuple[tuple[str, int, int], ...]  # (relative path, mtime_ns, size) of everything a render reads


@dataclass
class _Folder:
    """What a render needs of one template folder, as scanned; compiled parts are kept until it changes."""

    signature: Signature
    locales: dict[str, str]  # normalised tag -> folder name
    files: frozenset[str]  # "locale/part-file" present
    options: TemplateOptions | OptionsError
    checked: float  # monotonic time of the last scan
    compiled: dict[str, Template] = field(default_factory=dict)
    picked: dict[tuple[Channel, str, str], str] = field(default_factory=dict)  # pick_locale's answers
    push_data: dict[str, list[tuple[str, Template]]] = field(default_factory=dict)


class Renderer:
    """Renders template parts. `recheck`: seconds a folder's scan (which files exist, their mtimes, compiled
    parts) is trusted before it is scanned again; 0 scans on every render (previews, the CLI), a delivery
    process uses about a second so that an operator's edit is picked up within that time without stat
    calls on every render."""

    def __init__(self, root: Path, recheck: float = 0.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.root = root
        self.envs = Environments(root)
        self.recheck = recheck
        self.clock = clock
        self._folders: dict[str, _Folder] = {}

    def options(self, template: str) -> TemplateOptions:
        options = self._folder(template).options
        if isinstance(options, OptionsError):
            meta = self.root / template / "template.yaml"
            raise RenderError(f"template {template!r} has an invalid {meta}: {options}") from None
        return options

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
        with formatting([wanted, chosen], who.timezone), Render(context):  # one budget for all parts
            parts = self._parts(template, chosen, channel, context)
        sms = limits.finish(channel, parts, options.sms)
        return Rendered(template, channel, chosen, parts, sms)

    def pick_locale(self, template: str, channel: Channel, wanted: str, default: str) -> str:
        """The first locale folder in the fallback chain that has every required part of `channel` (or of the
        channel it borrows from: rules.catalog.BORROWS)."""
        scanned = self._folder(template)
        picked = scanned.picked.get((channel, wanted, default))
        if picked is not None:  # kept with the scan: a changed folder is scanned afresh
            return picked
        for tag in locale_chain(wanted, default):
            found = scanned.locales.get(_norm(tag))
            if found and _source(scanned, found, channel) is not None:
                scanned.picked[(channel, wanted, default)] = found
                return found
        files = expected_files(channel)
        raise RenderError(
            f"template {template!r} has no {channel} part ({files}) for locale {wanted!r} or its fallbacks "
            f"({', '.join(locale_chain(wanted, default))})"
        )

    def _folder(self, template: str) -> _Folder:
        """The folder's scan: reused for `recheck` seconds, then rescanned (compiled parts kept if nothing changed)."""
        now = self.clock()
        known = self._folders.get(template)
        if known is not None and now - known.checked < self.recheck:
            return known
        folder = self.folder(template)
        signature, locales, files = _scan(folder)
        if known is not None and known.signature == signature:
            known.checked = now
            return known
        try:
            options: TemplateOptions | OptionsError = read_options(folder)
        except OptionsError as exc:
            options = exc
        scanned = _Folder(signature, locales, files, options, now)
        self._folders[template] = scanned
        return scanned

    def _parts(self, template: str, locale: str, channel: Channel, context: dict[str, Any]) -> dict[str, str]:
        scanned = self._folder(template)
        rendered: dict[str, str] = {}
        for part, file in PARTS[_source(scanned, locale, channel) or channel].items():
            if f"{locale}/{file}" not in scanned.files:
                continue
            name = f"{template}/{locale}/{file}"
            text = self._part(scanned, name, file, context)
            if not text and not part.endswith("?"):
                raise RenderError(f"{name}: rendered to nothing")
            if text:
                rendered[part.rstrip("?")] = text
        return rendered

    def _part(self, scanned: _Folder, name: str, file: str, context: dict[str, Any]) -> str:
        env = self.envs.for_file(file)
        try:
            if file == "push.data.yaml":
                return self._push_data(scanned, env, name, context)
            compiled = scanned.compiled.get(name)
            if compiled is None:
                # compiled from the file as it is now (the environment's own cache would stat it on every use),
                # with its globals as a plain dict: Jinja copies them into every render's context, and
                # copying the default ChainMap was 5 % of a worker's CPU per send
                compiled = scanned.compiled[name] = env.loader.load(env, name, dict(env.make_globals(None)))  # type: ignore[union-attr]
            return compiled.render(context).strip()
        except RenderError:
            raise
        except Exception as exc:  # operator-written template code: any failure is the template's
            line = line_of(exc, str(self.root / name))
            message = exc.message if isinstance(exc, TemplateError) and exc.message else f"{type(exc).__name__}: {exc}"
            raise RenderError(f"{name}{f':{line}' if line else ''}: {message}") from None

    def _push_data(self, scanned: _Folder, env: SandboxedEnvironment, name: str, context: dict[str, Any]) -> str:
        values = scanned.push_data.get(name)
        if values is None:
            source = (self.root / name).read_text(encoding="utf-8")
            values = []
            for key, value in limits.push_data_source(source, name).items():
                try:
                    compiled = env.from_string(value)
                    compiled.globals = dict(compiled.globals)  # as above: a plain dict is copied faster
                    values.append((key, compiled))
                except TemplateError as exc:
                    raise RenderError(f"{name}: {key}: {exc.message or type(exc).__name__}") from None
            scanned.push_data[name] = values
        rendered = {}
        for key, compiled in values:
            try:
                rendered[key] = compiled.render(context).strip()
            except TemplateError as exc:
                raise RenderError(f"{name}: {key}: {exc.message or type(exc).__name__}") from None
        return limits.push_data(rendered)


def _source(scanned: _Folder, locale: str, channel: Channel) -> Channel | None:
    """Whose part files a `channel` message is made of in this locale folder: its own when it has them all,
    else those of the channel it borrows from (whatsapp.txt, else sms.txt); None when neither is complete."""
    for source in sources(channel):
        if all(f"{locale}/{file}" in scanned.files for file in required(source)):
            return source
    return None


def _scan(folder: Path) -> tuple[Signature, dict[str, str], frozenset[str]]:
    """The locale folders and part files of a template folder, with the mtime and size of each."""
    signature: list[tuple[str, int, int]] = []
    locales: dict[str, str] = {}
    files: set[str] = set()
    top = os.stat(folder)
    signature.append((".", top.st_mtime_ns, top.st_size))
    with os.scandir(folder) as entries:
        for entry in sorted(entries, key=lambda e: e.name):
            try:
                if entry.name == "template.yaml" and entry.is_file():
                    meta = entry.stat()
                    signature.append((entry.name, meta.st_mtime_ns, meta.st_size))
                elif entry.is_dir():
                    locales.setdefault(_norm(entry.name), entry.name)
                    signature.extend(_scan_locale(entry.path, entry.name, files))
            except OSError:  # removed meanwhile
                continue
    return tuple(signature), locales, frozenset(files)


def _scan_locale(path: str, locale: str, files: set[str]) -> list[tuple[str, int, int]]:
    info = os.stat(path)
    signature = [(locale, info.st_mtime_ns, info.st_size)]
    with os.scandir(path) as entries:
        for entry in sorted(entries, key=lambda e: e.name):
            if entry.name in PART_FILES and entry.is_file():
                stat = entry.stat()
                files.add(f"{locale}/{entry.name}")
                signature.append((f"{locale}/{entry.name}", stat.st_mtime_ns, stat.st_size))
    return signature


def _norm(tag: str) -> str:
    return tag.replace("_", "-").lower()


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
