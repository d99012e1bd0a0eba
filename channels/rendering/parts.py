"""What each channel accepts: limits checked on rendered parts, and the structured parts.

Limits (docs/templates.md):

- SMS: encoding and segments computed (channels/rendering/sms_encoding.py); more than the
  template's `sms.max_segments` (default 4) is an error, or the body is cut to
  fit when the template says `sms.truncate: true`.
- Push: title at most 100 characters, body at most 1000; `push.data.yaml` at
  most 2048 bytes as JSON, keys not reserved by FCM.
- Slack: text at most 4000 characters; blocks at most 50, a section's text at
  most 3000 characters, at most 10 fields of 2000, a header's text 150.
- WhatsApp: body at most 1600 characters. WhatsApp itself takes 4096 in a text message,
  but Parley sends through Twilio's Messages API, whose `Body` is at most 1600 characters
  (its published contract; error 21617 beyond). The body is whatsapp.txt, or sms.txt
  when the locale folder has no whatsapp.txt (rules.catalog.BORROWS); SMS segment
  options do not apply to it.
- Email subject and push title are one line: whitespace runs become one space.
"""

from __future__ import annotations

import json
from typing import Any

import yaml

from channels.rendering.sms_encoding import SmsInfo, fit, measure
from channels.rendering.templating import RenderError
from rules.model import Channel
from rules.template_options import SmsOptions

PUSH_TITLE_MAX = 100
PUSH_BODY_MAX = 1000
PUSH_DATA_MAX_BYTES = 2048
PUSH_RESERVED_KEYS = ("from", "notification", "message_type", "collapse_key")
PUSH_RESERVED_PREFIXES = ("google.", "gcm.")
SLACK_TEXT_MAX = 4000
SLACK_BLOCKS_MAX = 50
SLACK_SECTION_TEXT_MAX = 3000
SLACK_FIELDS_MAX = 10
SLACK_FIELD_TEXT_MAX = 2000
SLACK_HEADER_MAX = 150
WHATSAPP_BODY_MAX = 1600
ONE_LINE = {Channel.EMAIL: "subject", Channel.PUSH: "title"}


def finish(channel: Channel, parts: dict[str, str], sms: SmsOptions) -> SmsInfo | None:
    """Check (and for SMS, maybe shorten) the rendered parts in place; SMS info for an SMS."""
    if channel in ONE_LINE:
        parts[ONE_LINE[channel]] = " ".join(parts[ONE_LINE[channel]].split())
    if channel is Channel.SMS:
        parts["body"], info = sms_body(parts["body"], sms)
        return info
    if channel is Channel.PUSH:
        _at_most("push title", parts["title"], PUSH_TITLE_MAX)
        _at_most("push body", parts["body"], PUSH_BODY_MAX)
    if channel is Channel.WHATSAPP:
        _at_most("whatsapp body", parts["body"], WHATSAPP_BODY_MAX)
    if channel is Channel.SLACK:
        _at_most("slack text", parts["text"], SLACK_TEXT_MAX)
        if "blocks" in parts:
            parts["blocks"] = slack_blocks(parts["blocks"])
    return None


def sms_body(body: str, options: SmsOptions) -> tuple[str, SmsInfo]:
    info = measure(body)
    if info.segments <= options.max_segments:
        return body, info
    if options.truncate:
        return fit(body, options.max_segments)
    raise RenderError(
        f"the SMS is {info.segments} segments ({info.encoding}, {info.characters} characters); the template "
        f"allows {options.max_segments} (template.yaml sms.max_segments; or set sms.truncate: true to cut it)"
    )


def _at_most(what: str, text: str, limit: int) -> None:
    if len(text) > limit:
        raise RenderError(f"the {what} is {len(text)} characters; at most {limit} are allowed")


class PartError(Exception):
    """A structured part file (push.data.yaml) that is not what it should be, with its line."""

    def __init__(self, message: str, line: int = 1) -> None:
        super().__init__(message)
        self.message, self.line = message, line


def parse_push_data(source: str) -> dict[str, str]:
    """push.data.yaml as {key: value template}; PartError when it is not a flat mapping."""
    try:
        loaded = yaml.safe_load(source)
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else 1
        raise PartError(f"invalid YAML: {exc.problem or exc.context}", line) from None
    except yaml.YAMLError as exc:
        raise PartError(f"invalid YAML: {exc}") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise PartError(f"expected a mapping of key: value, got a {type(loaded).__name__}")
    data: dict[str, str] = {}
    for key, value in loaded.items():
        if not isinstance(key, str) or isinstance(value, (dict, list)) or value is None:
            raise PartError(f"{key!r}: expected a text key with a text or number value")
        if key in PUSH_RESERVED_KEYS or key.startswith(PUSH_RESERVED_PREFIXES):
            raise PartError(f"{key!r} is reserved by FCM; choose another key")
        data[key] = value if isinstance(value, str) else json.dumps(value)
    return data


def push_data_source(source: str, name: str) -> dict[str, str]:
    try:
        return parse_push_data(source)
    except PartError as exc:
        raise RenderError(f"{name}:{exc.line}: {exc.message}") from None


def push_data(rendered: dict[str, str]) -> str:
    text = json.dumps(rendered, ensure_ascii=False)
    size = len(text.encode())
    if size > PUSH_DATA_MAX_BYTES:
        raise RenderError(f"the push data is {size} bytes as JSON; at most {PUSH_DATA_MAX_BYTES} are allowed")
    return text


def slack_blocks(text: str) -> str:
    """The rendered slack.blocks.json, checked against Slack's limits, as compact JSON (a list of blocks)."""
    try:
        loaded = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RenderError(
            f"slack.blocks.json is not valid JSON after rendering: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        ) from None
    blocks = loaded["blocks"] if isinstance(loaded, dict) and "blocks" in loaded else loaded
    if not isinstance(blocks, list) or not all(isinstance(b, dict) and isinstance(b.get("type"), str) for b in blocks):
        raise RenderError('slack.blocks.json: expected a list of blocks, each an object with a "type"')
    if len(blocks) > SLACK_BLOCKS_MAX:
        raise RenderError(f"slack.blocks.json has {len(blocks)} blocks; at most {SLACK_BLOCKS_MAX} are allowed")
    for i, block in enumerate(blocks):
        _block(i, block)
    return json.dumps(blocks, ensure_ascii=False)


def _block(i: int, block: dict[str, Any]) -> None:
    where = f"slack.blocks.json block {i + 1} ({block['type']})"
    if block["type"] == "section":
        _text_at_most(where, block.get("text"), SLACK_SECTION_TEXT_MAX)
        fields = block.get("fields", [])
        if not isinstance(fields, list) or len(fields) > SLACK_FIELDS_MAX:
            raise RenderError(f"{where}: at most {SLACK_FIELDS_MAX} fields are allowed")
        for field in fields:
            _text_at_most(f"{where} field", field, SLACK_FIELD_TEXT_MAX)
    elif block["type"] == "header":
        _text_at_most(where, block.get("text"), SLACK_HEADER_MAX)


def _text_at_most(where: str, text: Any, limit: int) -> None:
    value = text.get("text") if isinstance(text, dict) else text
    if isinstance(value, str) and len(value) > limit:
        raise RenderError(f"{where}: the text is {len(value)} characters; at most {limit} are allowed")
