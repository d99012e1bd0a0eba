"""Templates are checked with the rules (`parley rules check`, reloads), and previewed with
`parley templates render`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from gateway.cli import main
from gateway.config import load_settings
from gateway.rulesets import RulesHolder

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "templates"
RULES = "version: 1\npolicies:\n  - name: ping\n    steps:\n      - send: sms\n        template: t\n"
EXAMPLE = {"event": "ping", "recipient": {"id": "u1"}, "data": {"listing": "Red bike"}}


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "rules.yaml").write_text(RULES, encoding="utf-8")
    (tmp_path / "templates/t/en").mkdir(parents=True)
    (tmp_path / "templates/t/en/sms.txt").write_text("SMS about {{ data.listing }}", encoding="utf-8")
    (tmp_path / "templates/t/example.json").write_text(json.dumps(EXAMPLE), encoding="utf-8")
    return tmp_path


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / "templates" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_a_clean_folder_passes_quietly(capsys: pytest.CaptureFixture[str], folder: Path) -> None:
    rules = folder / "rules.yaml"
    assert run(capsys, "rules", "check", str(rules)) == (0, f"{rules}: ok: 1 policy (ping)\n", "")


def test_a_syntax_error_in_any_part_file_is_a_problem_with_file_and_line(
    capsys: pytest.CaptureFixture[str], folder: Path
) -> None:
    bad = write(folder, "t/de/sms.txt", "Hallo\n{{ data.listing }\n")
    unknown = write(folder, "other/zh/email.txt", "{{ data.x | shout }}")
    data = write(folder, "t/en/push.data.yaml", "a: '{{ data.listing }}'\nb: [1, 2]\n")
    rules = folder / "rules.yaml"
    code, out, err = run(capsys, "rules", "check", str(rules))
    assert (code, out) == (1, "")
    assert err.splitlines() == [  # template by template, file by file
        f"{unknown}:1:1: (template): template syntax: No filter named 'shout'.",
        f"{bad}:2:1: (template): template syntax: unexpected '}}'",
        f"{data}:1:1: (template): 'b': expected a text key with a text or number value",
        f"{rules}: 3 problems; rules not valid",
    ]


def test_document_and_template_problems_are_reported_together(capsys: pytest.CaptureFixture[str], folder: Path) -> None:
    bad = write(folder, "t/en/sms.txt", "{% if %}")
    rules = folder / "rules.yaml"
    rules.write_text(RULES.replace("send: sms", "send: fax"), encoding="utf-8")
    code, _, err = run(capsys, "rules", "check", str(rules))
    lines = err.splitlines()
    assert code == 1 and len(lines) == 3
    assert "unknown channel 'fax'" in lines[0]
    assert lines[1].startswith(f"{bad}:1:1: (template): template syntax: ")


def test_unprovided_variables_are_warnings_not_errors(capsys: pytest.CaptureFixture[str], folder: Path) -> None:
    sms = write(
        folder,
        "t/de/sms.txt",
        "{{ data.listing }} {{ data.price | currency('EUR') }}\n"
        "{% if data.note is defined %}{{ data.note }}{% endif %} {{ data.maybe | default('') }}\n"
        "{% for item in data.listing %}{{ item }}{% endfor %} {{ recipient.phone }} {{ listing }}\n"
        "{{ data['listing'] }} {{ data.listing.upper() }} {{ counterpart.id }}",
    )
    stray = write(folder, "t/de/sms.text", "typo")
    rules = folder / "rules.yaml"
    code, out, err = run(capsys, "rules", "check", str(rules))
    assert (code, out) == (0, f"{rules}: ok: 1 policy (ping)\n")
    assert err.splitlines() == [
        f"{stray}:1:1: warning: not a part file (expected one of call.txt, email.html, email.subject.txt, email.txt, "
        "push.body.txt, push.data.yaml, push.title.txt, slack.blocks.json, slack.txt, sms.txt, whatsapp.txt)",
        f"{sms}:1:1: warning: data.price is used but no example intent provides it (example.json)",
        f"{sms}:3:1: warning: 'listing' is undefined (a template can use event, data, recipient, counterpart, to)",
        f"{sms}:3:1: warning: recipient.phone is never available (a template sees only id, locale, timezone of a person)",
        f"{sms}:4:1: warning: counterpart.id is used but no example intent provides it (example.json)",
    ]


def test_missing_and_invalid_examples_are_warnings(capsys: pytest.CaptureFixture[str], folder: Path) -> None:
    write(folder, "t/example.json", '{"event": "ping",\n "recipient": {}}')
    write(folder, "u/en/sms.txt", "hi")
    rules = folder / "rules.yaml"
    code, _, err = run(capsys, "rules", "check", str(rules))
    templates = folder / "templates"
    assert code == 0
    assert err.splitlines() == [
        f"{templates / 't/example.json'}:1:1: warning: not a valid intent: recipient.id: Field required",
        f"{templates / 'u/example.json'}:1:1: warning: template 'u' has no example.json: its variables are not checked",
    ]


def test_a_reload_with_a_broken_template_keeps_the_rules_in_force(folder: Path) -> None:
    config = folder / "config.yaml"
    config.write_text("templates: templates\nrules: rules.yaml\n", encoding="utf-8")
    holder = RulesHolder(load_settings(config, env={}))
    assert holder.reload() == []
    before = holder.current
    write(folder, "t/en/sms.txt", "{{ broken")
    problems = holder.reload()
    assert [p.source for p in problems] == [str(folder / "templates/t/en/sms.txt")]
    assert holder.current is before


def test_the_shipped_templates_check_without_warnings(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "rules", "check", str(ROOT / "config.yaml"))
    assert (code, err) == (0, "")
    assert out.endswith("ok: 2 policies (inquiry-unanswered, booking-confirmed)\n")


# -- parley templates render -----------------------------------------------------------------------


def test_render_prints_every_part_with_sms_info(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    intent = tmp_path / "intent.json"
    body = {"event": "x", "recipient": {"id": "u", "locale": "de-AT"}, "data": {"listing": "{{ 7*7 }} €"}}
    intent.write_text(json.dumps(body), encoding="utf-8")
    code, out, err = run(
        capsys, "templates", "render", "booking-confirmed", "--channel", "sms", "--data", str(intent),
        "--templates", str(SHIPPED),
    )  # fmt: skip
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        "template booking-confirmed, channel sms, locale de (asked de-AT: de-AT, de, en)",
        "sms: GSM-7, 1 segment, 53 characters (58 septets)",
        "--- body",
        'Parley: Ihre Buchung von "{{ 7*7 }} €" ist bestätigt.',
    ]


def test_render_json_and_locale_override(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys, "templates", "render", "inquiry-new", "--channel", "push", "--locale", "zh-CN",
        "--templates", str(SHIPPED), "--json",
    )  # fmt: skip
    assert code == 0
    result = json.loads(out)
    assert (result["template"], result["channel"], result["locale"], result["sms"]) == (
        "inquiry-new",
        "push",
        "zh",
        None,
    )
    assert set(result["parts"]) == {"title", "body", "data"}
    assert json.loads(result["parts"]["data"]) == {"type": "inquiry", "listing": "Red bike"}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["nope", "--channel", "sms"], "unknown template 'nope'"),
        (["inquiry-call", "--channel", "push"], "template 'inquiry-call' has no push part"),
        (["inquiry-new", "--channel", "sms", "--data", "missing.json"], "missing.json: cannot read"),
        (["inquiry-new", "--channel", "sms", "--data", "{bad}"], "invalid intent"),
    ],
)
def test_render_errors_exit_1_with_a_message(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, argv: list[str], message: str
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"event": "x"}', encoding="utf-8")
    argv = [a.replace("{bad}", str(bad)) for a in argv]
    code, out, err = run(capsys, "templates", "render", *argv, "--templates", str(SHIPPED))
    assert (code, out) == (1, "")
    assert err.startswith("parley templates render: ") and message in err


def test_render_reports_a_missing_variable(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    shutil.copytree(SHIPPED / "inquiry-new", tmp_path / "inquiry-new")
    intent = tmp_path / "intent.json"
    intent.write_text(json.dumps({"event": "x", "recipient": {"id": "u"}, "data": {"listing": "x"}}), encoding="utf-8")
    code, _, err = run(
        capsys, "templates", "render", "inquiry-new", "--channel", "sms", "--data", str(intent),
        "--templates", str(tmp_path),
    )  # fmt: skip
    assert code == 1
    assert err == (
        "parley templates render: inquiry-new/en/sms.txt:1: data.message is undefined: "
        "the intent's data has no 'message'\n"
    )
