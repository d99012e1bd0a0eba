"""Rendering templates: the locale fallback chain, escaping, missing variables, formatting, limits,
and every shipped template in every language for every channel it has."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from channels.rendering.render import Renderer, RenderError, UnknownTemplate, locale_chain
from rules.catalog import Catalog
from rules.intent import Intent
from rules.model import Channel

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "templates"
LANGUAGES = ("en", "de", "zh")


def make(root: Path, files: dict[str, str]) -> Renderer:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return Renderer(root)


def intent(locale: str = "en", timezone: str | None = None, **data: Any) -> Intent:
    recipient: dict[str, Any] = {"id": "seller-42", "locale": locale, "email": "s@example.com", "phone": "+14155550123"}
    if timezone:
        recipient["timezone"] = timezone
    return Intent.model_validate(
        {
            "event": "inquiry.created",
            "recipient": recipient,
            "counterpart": {"id": "buyer-7", "phone": "+14155550199", "email": "b@example.com"},
            "data": data,
        }
    )


# -- the fallback chain ----------------------------------------------------------------------------


def test_locale_chain() -> None:
    assert locale_chain("de-AT") == ["de-AT", "de", "en"]
    assert locale_chain("zh_Hans_CN", "de") == ["zh-Hans-CN", "zh-Hans", "zh", "de"]
    assert locale_chain("en") == ["en"]


@pytest.fixture
def multilingual(tmp_path: Path) -> Renderer:
    return make(
        tmp_path,
        {
            "t/en/sms.txt": "en {{ data.x }}",
            "t/de/sms.txt": "de {{ data.x }}",
            "t/de-AT/sms.txt": "de-AT {{ data.x }}",
            "t/de/push.title.txt": "only a title",  # incomplete: push falls back
            "t/en/push.title.txt": "title",
            "t/en/push.body.txt": "body",
        },
    )


@pytest.mark.parametrize(
    ("asked", "used"),
    [("de-AT", "de-AT"), ("de-at", "de-AT"), ("de_AT", "de-AT"), ("de-CH", "de"), ("de", "de"), ("fr", "en")],
)
def test_the_most_specific_locale_with_the_part_wins(multilingual: Renderer, asked: str, used: str) -> None:
    rendered = multilingual.render("t", Channel.SMS, intent(asked, x=1), None)
    assert (rendered.locale, rendered.parts) == (used, {"body": f"{used} 1"})


def test_a_folder_missing_a_required_part_is_skipped(multilingual: Renderer) -> None:
    rendered = multilingual.render("t", Channel.PUSH, intent("de-AT"), None)
    assert (rendered.locale, rendered.parts) == ("en", {"title": "title", "body": "body"})


def test_the_template_default_locale_ends_the_chain(tmp_path: Path) -> None:
    renderer = make(tmp_path, {"t/template.yaml": "default_locale: de\n", "t/de/sms.txt": "Hallo"})
    assert renderer.render("t", Channel.SMS, intent("fr"), None).locale == "de"


def test_an_explicit_locale_overrides_the_recipients(multilingual: Renderer) -> None:
    assert multilingual.render("t", Channel.SMS, intent("en", x=1), None, locale="de").parts == {"body": "de 1"}


def test_no_part_in_the_chain_is_a_clear_error(multilingual: Renderer) -> None:
    with pytest.raises(RenderError, match=r"has no slack part \(slack.txt\) for locale 'de-AT'.*\(de-AT, de, en\)"):
        multilingual.render("t", Channel.SLACK, intent("de-AT"), None)
    with pytest.raises(UnknownTemplate, match="unknown template 'nope'"):
        multilingual.render("nope", Channel.SMS, intent(), None)
    with pytest.raises(UnknownTemplate):
        multilingual.render("..", Channel.SMS, intent(), None)


# -- escaping: data are values, never code or markup -----------------------------------------------

EVIL = {
    "listing": "{{ 7*7 }} {% if true %}x{% endif %}",
    "html": "<script>alert(1)</script> & Co",
    "ping": "<!channel>",
}


@pytest.fixture
def escaping(tmp_path: Path) -> Renderer:
    return make(
        tmp_path,
        {
            "t/en/sms.txt": "{{ data.listing }} {{ 7*7 }}",
            "t/en/email.subject.txt": "{{ data.html }}\n{{ data.listing }}",
            "t/en/email.txt": "{{ data.html }}",
            "t/en/email.html": "<p>{{ data.html }}</p>",
            "t/en/slack.txt": "<!here> *{{ data.ping }}* {{ data.html }}",
            "t/en/slack.blocks.json": '[{"type": "section", "text": {"type": "mrkdwn", "text": "{{ data.ping }} {{ data.quote }}"}}]',
            "t/en/push.title.txt": "t",
            "t/en/push.body.txt": "b",
            "t/en/push.data.yaml": 'listing: "{{ data.listing }}"\ncount: 3\n',
        },
    )


def test_template_code_in_data_renders_literally(escaping: Renderer) -> None:
    assert escaping.render("t", Channel.SMS, intent(**EVIL), None).parts["body"] == (
        "{{ 7*7 }} {% if true %}x{% endif %} 49"
    )
    data = escaping.render("t", Channel.PUSH, intent(**EVIL), None).parts["data"]
    assert json.loads(data) == {"listing": "{{ 7*7 }} {% if true %}x{% endif %}", "count": "3"}


def test_html_is_escaped_in_email_html_only(escaping: Renderer) -> None:
    parts = escaping.render("t", Channel.EMAIL, intent(**EVIL), None).parts
    assert parts["html"] == "<p>&lt;script&gt;alert(1)&lt;/script&gt; &amp; Co</p>"
    assert parts["text"] == "<script>alert(1)</script> & Co"
    assert parts["subject"] == "<script>alert(1)</script> & Co {{ 7*7 }} {% if true %}x{% endif %}"  # one line


def test_slack_control_characters_in_data_are_inert(escaping: Renderer) -> None:
    parts = escaping.render("t", Channel.SLACK, intent(**EVIL, quote='"}]'), None).parts
    assert parts["text"] == "<!here> *&lt;!channel&gt;* &lt;script&gt;alert(1)&lt;/script&gt; &amp; Co"
    blocks = json.loads(parts["blocks"])  # a quote in data cannot break out of the JSON string
    assert blocks == [{"type": "section", "text": {"type": "mrkdwn", "text": '&lt;!channel&gt; "}]'}}]


def test_the_sandbox_refuses_unsafe_attributes(tmp_path: Path) -> None:
    renderer = make(tmp_path, {"t/en/sms.txt": "{{ data.__class__.__mro__ }}"})
    with pytest.raises(RenderError, match=r"t/en/sms.txt:1: "):
        renderer.render("t", Channel.SMS, intent(), None)


def test_a_data_key_named_like_a_dict_method_reads_as_jinja_reads_it(tmp_path: Path) -> None:
    """`data.x` looks the key up directly when dicts have no attribute x (a shortcut); otherwise as Jinja does."""
    renderer = make(tmp_path, {"t/en/sms.txt": "{{ data.listing.title }}|{{ data['items'] }}|{{ data.items is callable }}"
                                               "|{{ data._note }}|{{ data.__class__ is defined }}"})  # fmt: skip
    body = renderer.render("t", Channel.SMS, intent(listing={"title": "Red bike"}, items=3, _note="n"), None)
    assert body.parts["body"] == "Red bike|3|True|n|False"


def test_no_phone_or_email_reaches_a_template(tmp_path: Path) -> None:
    renderer = make(tmp_path, {"t/en/sms.txt": "{{ recipient }} {{ counterpart }} {{ to }}"})
    body = renderer.render("t", Channel.SMS, intent(), None).parts["body"]
    assert "@" not in body and "+1415" not in body and "seller-42" in body and "buyer-7" in body
    renderer = make(tmp_path, {"t/en/sms.txt": "{{ counterpart.phone }}"})
    with pytest.raises(RenderError, match=r"counterpart.phone is undefined \(a template sees only id, locale"):
        renderer.render("t", Channel.SMS, intent(), None)


# -- missing variables -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("Hi {{ data.listing }}", "t/en/sms.txt:1: data.listing is undefined: the intent's data has no 'listing'"),
        ("Hi\n\n{{ data.a.b }}", "t/en/sms.txt:3: data.a.b is undefined: the intent's data.a has no 'b'"),
        ("{{ listing }}", "t/en/sms.txt:1: 'listing' is undefined (a template can use event, data, recipient"),
        ("{% if data.flag %}x{% endif %}", "data.flag is undefined"),
        ("{{ data.when | datetime }}", "t/en/sms.txt:1: datetime: 'soon' is not an ISO-8601 time"),
        ("{{ 1 / 0 }}", "t/en/sms.txt:1: ZeroDivisionError: division by zero"),
        ("{{ data.a.b }", "t/en/sms.txt:1: unexpected '}'"),
        ("{{ data.x | nosuchfilter }}", "No filter named 'nosuchfilter'"),
        ("{% if data.nope is defined %}x{% endif %}", "t/en/sms.txt: rendered to nothing"),
    ],
)
def test_a_template_that_cannot_render_says_where_and_why(tmp_path: Path, text: str, message: str) -> None:
    renderer = make(tmp_path, {"t/en/sms.txt": text})
    with pytest.raises(RenderError) as caught:
        renderer.render("t", Channel.SMS, intent(a={}, when="soon", x=1), None)
    assert message in str(caught.value)


def test_guarded_optional_values_render(tmp_path: Path) -> None:
    renderer = make(
        tmp_path, {"t/en/sms.txt": "{% if data.note is defined %}{{ data.note }}{% endif %}{{ data.x | default('-') }}"}
    )
    assert renderer.render("t", Channel.SMS, intent(), None).parts["body"] == "-"


# -- dates, times and numbers for the recipient ----------------------------------------------------

FORMATS = (
    "{{ data.at | datetime }}|{{ data.at | date('long') }}|{{ data.at | time }}|{{ data.day | date('full') }}|"
    "{{ data.n | number }}|{{ data.n | number(2) }}|{{ data.n | currency('EUR') }}"
)


@pytest.mark.parametrize(
    ("locale", "timezone", "expected"),
    [
        (
            "de",
            "Europe/Berlin",
            "23.11.2026, 23:30:00|23. November 2026|23:30|Donnerstag, 24. Dezember 2026|1.234,5|1.234,50|1.234,50\xa0€",
        ),
        (
            "de-AT",
            "Europe/Vienna",
            "23.11.2026, 23:30:00|23. November 2026|23:30|Donnerstag, 24. Dezember 2026|1.234,5|1.234,50|€\xa01.234,50",
        ),
        (
            "zh-CN",
            "Asia/Shanghai",
            "2026年11月24日 06:30:00|2026年11月24日|06:30|2026年12月24日星期四|1,234.5|1,234.50|€1,234.50",
        ),
        (
            "en",
            None,
            "Nov 23, 2026, 10:30:00\u202fPM|November 23, 2026|10:30\u202fPM|Thursday, December 24, 2026|1,234.5|1,234.50|€1,234.50",
        ),
    ],
)
def test_filters_use_the_recipients_locale_and_timezone(
    tmp_path: Path, locale: str, timezone: str | None, expected: str
) -> None:
    files = {f"t/{lang}/sms.txt": FORMATS for lang in LANGUAGES}
    renderer = make(tmp_path, files)
    data = {"at": "2026-11-23T22:30:00Z", "day": "2026-12-24", "n": 1234.5}
    assert renderer.render("t", Channel.SMS, intent(locale, timezone, **data), None).parts["body"] == expected


# -- channel limits --------------------------------------------------------------------------------


def test_sms_info_and_the_segment_limit(tmp_path: Path) -> None:
    renderer = make(tmp_path, {"t/en/sms.txt": "{{ data.text }}", "t/template.yaml": "sms: {max_segments: 2}\n"})
    rendered = renderer.render("t", Channel.SMS, intent(text="€" * 80), None)
    assert rendered.sms is not None and rendered.sms.as_dict() == {
        "encoding": "GSM-7", "segments": 1, "units": 160, "characters": 80, "truncated": False,
    }  # fmt: skip
    with pytest.raises(RenderError, match=r"the SMS is 3 segments \(UCS-2, 135 characters\); the template allows 2"):
        renderer.render("t", Channel.SMS, intent(text="你" * 135), None)
    (tmp_path / "t/template.yaml").write_text("sms: {max_segments: 2, truncate: true}\n", encoding="utf-8")
    cut = renderer.render("t", Channel.SMS, intent(text="你" * 135), None)
    assert cut.sms is not None and (cut.sms.segments, cut.sms.truncated) == (2, True)


def test_sms_default_limit_is_four_segments(tmp_path: Path) -> None:
    renderer = make(tmp_path, {"t/en/sms.txt": "{{ data.text }}"})
    assert renderer.render("t", Channel.SMS, intent(text="a" * 612), None).sms.segments == 4  # type: ignore[union-attr]
    with pytest.raises(RenderError, match="5 segments"):
        renderer.render("t", Channel.SMS, intent(text="a" * 613), None)


@pytest.mark.parametrize(
    ("files", "channel", "message"),
    [
        (
            {"push.title.txt": "{{ data.long }}", "push.body.txt": "b"},
            Channel.PUSH,
            "push title is 101 characters; at most 100",
        ),
        (
            {"push.title.txt": "t", "push.body.txt": "{{ data.long * 10 }}"},
            Channel.PUSH,
            "push body is 1010 characters; at most 1000",
        ),
        (
            {"push.title.txt": "t", "push.body.txt": "b", "push.data.yaml": "from: x\n"},
            Channel.PUSH,
            "'from' is reserved by FCM",
        ),
        (
            {"push.title.txt": "t", "push.body.txt": "b", "push.data.yaml": "- a\n"},
            Channel.PUSH,
            "expected a mapping of key: value",
        ),
        (
            {"push.title.txt": "t", "push.body.txt": "b", "push.data.yaml": "a: '{{ data.long * 30 }}'\n"},
            Channel.PUSH,
            "push data is 3039 bytes",
        ),
        ({"slack.txt": "{{ data.long * 40 }}"}, Channel.SLACK, "slack text is 4040 characters; at most 4000"),
        (
            {"slack.txt": "s", "slack.blocks.json": "[" + ",".join(['{"type": "divider"}'] * 51) + "]"},
            Channel.SLACK,
            "51 blocks; at most 50",
        ),
        (
            {
                "slack.txt": "s",
                "slack.blocks.json": '[{"type": "section", "text": {"type": "mrkdwn", "text": "{{ data.long * 30 }}"}}]',
            },
            Channel.SLACK,
            "block 1 (section): the text is 3030 characters; at most 3000",
        ),
        (
            {
                "slack.txt": "s",
                "slack.blocks.json": '[{"type": "header", "text": {"type": "plain_text", "text": "{{ data.long * 2 }}"}}]',
            },
            Channel.SLACK,
            "block 1 (header): the text is 202 characters; at most 150",
        ),
        (
            {"slack.txt": "s", "slack.blocks.json": "[{{ data.long }}]"},
            Channel.SLACK,
            "slack.blocks.json is not valid JSON after rendering",
        ),
        (
            {"slack.txt": "s", "slack.blocks.json": '{"blocks": [{"text": "x"}]}'},
            Channel.SLACK,
            'each an object with a "type"',
        ),
    ],
)
def test_channel_limits_are_clear_errors(tmp_path: Path, files: dict[str, str], channel: Channel, message: str) -> None:
    renderer = make(tmp_path, {f"t/en/{name}": text for name, text in files.items()})
    with pytest.raises(RenderError, match=message.replace("(", r"\(").replace(")", r"\)")):
        renderer.render("t", channel, intent(long="x" * 101), None)


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        ("colour: red\n", "unknown key 'colour' (expected default_locale, description, sms)"),
        ("sms: {max_segments: many}\n", "sms.max_segments: expected a whole number from 1 to 10, got 'many'"),
        ("sms: {max_segments: 11}\n", "sms.max_segments: expected a whole number from 1 to 10, got 11"),
        ("sms: {truncate: maybe}\n", "sms.truncate: expected true or false, got 'maybe'"),
        ("sms: {limit: 3}\n", "unknown key 'sms.limit' (expected max_segments, truncate)"),
        ("default_locale: 5\n", "default_locale: expected a locale such as en or de-AT, got 5"),
        ("- a\n", "expected a mapping with keys default_locale, description, sms, got a list"),
        ("sms: [\n", "(line 2)"),
    ],
)
def test_invalid_template_yaml_is_a_clear_error(tmp_path: Path, yaml_text: str, message: str) -> None:
    renderer = make(tmp_path, {"t/en/sms.txt": "hi", "t/template.yaml": yaml_text})
    with pytest.raises(RenderError) as caught:
        renderer.render("t", Channel.SMS, intent(), None)
    assert f"template 't' has an invalid {tmp_path / 't' / 'template.yaml'}: " in str(caught.value)
    assert message in str(caught.value)
    info = Catalog.scan(tmp_path).templates["t"]  # the rules check reports the same problem
    assert info.problem is not None and message in info.problem


def test_an_edited_template_is_rendered_anew(tmp_path: Path) -> None:
    renderer = make(tmp_path, {"t/en/sms.txt": "one"})
    assert renderer.render("t", Channel.SMS, intent(), None).parts["body"] == "one"
    path = tmp_path / "t/en/sms.txt"
    path.write_text("two", encoding="utf-8")
    stat = path.stat()
    os.utime(path, (stat.st_atime + 5, stat.st_mtime + 5))
    assert renderer.render("t", Channel.SMS, intent(), None).parts["body"] == "two"


# -- every shipped template, in every language, on every channel it has ----------------------------

CATALOG = Catalog.scan(SHIPPED)
SHIPPED_CASES = [
    pytest.param(name, channel, lang, id=f"{name}-{channel}-{lang}")
    for name, info in sorted(CATALOG.templates.items())
    for channel in sorted(info.channels)
    for lang in LANGUAGES
]


def test_the_shipped_templates_are_all_there() -> None:
    assert set(CATALOG.templates) >= {
        "inquiry-new", "inquiry-reminder", "inquiry-call", "inquiry-unanswered-ops", "booking-confirmed",
    }  # fmt: skip
    for name, info in CATALOG.templates.items():
        assert info.problem is None, name
        assert info.locales >= set(LANGUAGES), name
        assert (SHIPPED / name / "example.json").is_file(), name


@pytest.mark.parametrize(("name", "channel", "lang"), SHIPPED_CASES)
def test_every_shipped_template_renders_in_every_language(name: str, channel: Channel, lang: str) -> None:
    example = Intent.model_validate_json((SHIPPED / name / "example.json").read_text(encoding="utf-8"))
    regional = {"en": "en-GB", "de": "de-AT", "zh": "zh-CN"}[lang]
    rendered = Renderer(SHIPPED).render(name, channel, example, None, locale=regional)
    assert rendered.locale == lang  # the language's own folder, not the fallback
    for file in (SHIPPED / name / lang).iterdir():
        assert file.read_text(encoding="utf-8").strip(), file
    assert all(text.strip() for text in rendered.parts.values())
    assert "Red bike" in " ".join(rendered.parts.values())
    if channel is Channel.SMS:
        assert rendered.sms is not None
        assert rendered.sms.encoding == ("UCS-2" if lang == "zh" else "GSM-7")
        assert not rendered.sms.truncated
    if lang == "zh":
        assert any("\u4e00" <= c <= "\u9fff" for c in "".join(rendered.parts.values()))


def test_a_delivery_renderer_rescans_a_folder_at_most_every_recheck_seconds(tmp_path: Path) -> None:
    now = [100.0]
    make(tmp_path, {"t/en/sms.txt": "one"})
    renderer = Renderer(tmp_path, recheck=1.0, clock=lambda: now[0])
    assert renderer.render("t", Channel.SMS, intent(), None).parts["body"] == "one"
    path = tmp_path / "t/en/sms.txt"
    path.write_text("two!", encoding="utf-8")
    (tmp_path / "t/de").mkdir()
    (tmp_path / "t/de/sms.txt").write_text("zwei", encoding="utf-8")
    now[0] += 0.5  # within the recheck: the scan and the compiled part are trusted
    assert renderer.render("t", Channel.SMS, intent(), None).parts["body"] == "one"
    assert renderer.render("t", Channel.SMS, intent("de"), None).locale == "en"
    now[0] += 0.6  # past it: the edit, the new locale and a removed file are seen
    assert renderer.render("t", Channel.SMS, intent(), None).parts["body"] == "two!"
    assert renderer.render("t", Channel.SMS, intent("de"), None).parts["body"] == "zwei"
    (tmp_path / "t/de/sms.txt").unlink()
    now[0] += 1.1
    assert renderer.render("t", Channel.SMS, intent("de"), None).locale == "en"
