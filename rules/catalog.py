"""Which templates exist, and for which channels: what the rules check needs.

Layout (docs/templates.md): one folder per template name, one folder per
locale inside it, one file per channel part:

    templates/inquiry-new/en/sms.txt
    templates/inquiry-new/en/email.subject.txt
    templates/inquiry-new/en/email.txt          (+ optional email.html)
    templates/inquiry-new/en/push.title.txt
    templates/inquiry-new/en/push.body.txt
    templates/inquiry-new/en/slack.txt
    templates/inquiry-new/en/call.txt
    templates/inquiry-new/en/whatsapp.txt       (or, without it, sms.txt)

Optional parts: email.html, push.data.yaml, slack.blocks.json. Options (default
locale, SMS segment limit) live in templates/inquiry-new/template.yaml
(rules/template_options.py); example intents in templates/inquiry-new/example.json.

A channel is available for a template when all its required parts (or those of the
channel it borrows from: BORROWS) exist in the template's default locale (`en`, or
`default_locale` in the template's `template.yaml`). Rendering lives elsewhere; this
module only looks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from rules.model import Channel
from rules.template_options import OptionsError, TemplateOptions, read_options

# part name -> file, per channel; optional parts end with "?". The one description of the layout.
PARTS: dict[Channel, dict[str, str]] = {
    Channel.EMAIL: {"subject": "email.subject.txt", "text": "email.txt", "html?": "email.html"},
    Channel.SMS: {"body": "sms.txt"},
    Channel.PUSH: {"title": "push.title.txt", "body": "push.body.txt", "data?": "push.data.yaml"},
    Channel.SLACK: {"text": "slack.txt", "blocks?": "slack.blocks.json"},
    Channel.CALL: {"speech": "call.txt"},
    Channel.WHATSAPP: {"body": "whatsapp.txt"},
}
REQUIRED_PARTS: dict[Channel, tuple[str, ...]] = {
    channel: tuple(file for part, file in parts.items() if not part.endswith("?")) for channel, parts in PARTS.items()
}
# A channel that sends another's parts when a locale folder lacks its own: a WhatsApp message is the
# SMS text (sms.txt) unless the folder has whatsapp.txt. Decided per locale folder, so the recipient's
# language wins over the channel's own part (de/sms.txt before en/whatsapp.txt).
BORROWS: dict[Channel, Channel] = {Channel.WHATSAPP: Channel.SMS}


def sources(channel: Channel) -> tuple[Channel, ...]:
    """The channels whose part files can make a message of `channel`, its own first."""
    borrowed = BORROWS.get(channel)
    return (channel,) if borrowed is None else (channel, borrowed)


def expected_files(channel: Channel) -> str:
    """The part files `channel` needs, in words: `sms.txt`, `whatsapp.txt or sms.txt`."""
    return " or ".join(" and ".join(REQUIRED_PARTS[source]) for source in sources(channel))


@dataclass(frozen=True)
class TemplateInfo:
    name: str
    default_locale: str
    channels: frozenset[Channel]
    locales: frozenset[str]
    problem: str | None = None  # why template.yaml could not be used
    options: TemplateOptions = field(default_factory=TemplateOptions)


class Catalog:
    def __init__(self, root: Path, templates: dict[str, TemplateInfo]) -> None:
        self.root = root
        self.templates = templates

    @classmethod
    def scan(cls, root: Path) -> Catalog:
        found: dict[str, TemplateInfo] = {}
        if root.is_dir():
            for folder in sorted(p for p in root.iterdir() if p.is_dir()):
                found[folder.name] = _describe(folder)
        return cls(root, found)

    def missing_part(self, name: str, channel: Channel) -> str | None:
        """Why `name` cannot be sent on `channel`, or None when it can."""
        info = self.templates.get(name)
        if info is None:
            return f"unknown template {name!r} (no folder {self.root / name})"
        if info.problem is not None:
            return f"template {name!r} has an invalid {self.root / name / 'template.yaml'}: {info.problem}"
        if channel in info.channels:
            return None
        where = self.root / name / info.default_locale
        return f"template {name!r} has no {channel} part (expected {expected_files(channel)} in {where})"


def _describe(folder: Path) -> TemplateInfo:
    try:
        options, problem = read_options(folder), None
    except OptionsError as exc:
        options, problem = TemplateOptions(), str(exc)
    default_locale = options.default_locale
    locales = frozenset(p.name for p in folder.iterdir() if p.is_dir())
    base = folder / default_locale
    present = {channel for channel, parts in REQUIRED_PARTS.items() if all((base / part).is_file() for part in parts)}
    channels = frozenset(channel for channel in PARTS if present.intersection(sources(channel)))
    return TemplateInfo(folder.name, default_locale, channels, locales, problem, options)
