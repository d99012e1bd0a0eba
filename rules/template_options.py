"""A template's own options: `templates/<name>/template.yaml` (docs/templates.md).

    default_locale: en        # the last step of the locale fallback chain
    description: ...          # free text for operators
    sms:
      max_segments: 4         # 1..10; a longer SMS is an error ...
      truncate: false         # ... unless true: then it is cut to fit, ending in an ellipsis

Every key is optional; a missing file means all defaults. Problems are one
clear line, naming the key.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

DEFAULT_LOCALE = "en"
MAX_SEGMENTS = 4
SEGMENTS_LIMIT = 10  # providers refuse or split unreliably beyond ~10 concatenated segments
TOP_KEYS = ("default_locale", "description", "sms")
SMS_KEYS = ("max_segments", "truncate")
_LOCALE = re.compile(r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8})*$")


class OptionsError(ValueError):
    """template.yaml cannot be used; the message says which key and why."""


@dataclass(frozen=True)
class SmsOptions:
    max_segments: int = MAX_SEGMENTS
    truncate: bool = False


@dataclass(frozen=True)
class TemplateOptions:
    default_locale: str = DEFAULT_LOCALE
    description: str | None = None
    sms: SmsOptions = field(default_factory=SmsOptions)


def read_options(folder: Path) -> TemplateOptions:
    """The options in `folder/template.yaml`, defaults when there is none; OptionsError otherwise."""
    meta = folder / "template.yaml"
    if not meta.is_file():
        return TemplateOptions()
    try:
        loaded = yaml.safe_load(meta.read_text(encoding="utf-8"))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise OptionsError(f"{exc.problem or exc.context} (line {mark.line + 1 if mark else 1})") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise OptionsError(str(exc)) from None
    return parse_options(loaded)


def parse_options(data: Any) -> TemplateOptions:
    if data is None:
        return TemplateOptions()
    spec = _mapping(data, TOP_KEYS, "")
    locale = spec.get("default_locale", DEFAULT_LOCALE)
    if not isinstance(locale, str) or not _LOCALE.match(locale):
        raise OptionsError(f"default_locale: expected a locale such as en or de-AT, got {_describe(locale)}")
    description = spec.get("description")
    if description is not None and not isinstance(description, str):
        raise OptionsError(f"description: expected text, got {_describe(description)}")
    return TemplateOptions(locale, description, _sms(spec.get("sms", {})))


def _sms(data: Any) -> SmsOptions:
    spec = _mapping(data if data is not None else {}, SMS_KEYS, "sms")
    segments = spec.get("max_segments", MAX_SEGMENTS)
    if not isinstance(segments, int) or isinstance(segments, bool) or not 1 <= segments <= SEGMENTS_LIMIT:
        raise OptionsError(
            f"sms.max_segments: expected a whole number from 1 to {SEGMENTS_LIMIT}, got {_describe(segments)}"
        )
    truncate = spec.get("truncate", False)
    if not isinstance(truncate, bool):
        raise OptionsError(f"sms.truncate: expected true or false, got {_describe(truncate)}")
    return SmsOptions(segments, truncate)


def _mapping(data: Any, keys: tuple[str, ...], where: str) -> dict[str, Any]:
    prefix = f"{where}: " if where else ""
    if not isinstance(data, dict):
        raise OptionsError(f"{prefix}expected a mapping with keys {', '.join(keys)}, got {_describe(data)}")
    for key in data:
        if key not in keys:
            dotted = f"{where}.{key}" if where else str(key)
            raise OptionsError(f"unknown key {dotted!r} (expected {', '.join(keys)})")
    return data


def _describe(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "nothing"
    if isinstance(value, (dict, list)):
        return "a mapping" if isinstance(value, dict) else "a list"
    return repr(value)
