"""`parley rules check` on WhatsApp steps and destinations: a destination needs an E.164 number,
a step needs a template with a whatsapp part or an sms part."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.cli import main

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"


def check(tmp_path: Path, rules: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    file = tmp_path / "rules.yaml"
    file.write_text(rules, encoding="utf-8")
    code = main(["rules", "check", str(file), "--templates", str(TEMPLATES)])
    out, err = capsys.readouterr()
    return code, out, err.replace(str(file), "rules.yaml").replace(str(TEMPLATES), "templates")


def test_a_whatsapp_destination_that_is_not_an_e164_number_is_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = check(
        tmp_path,
        """version: 1
destinations:
  ops-chat: {channel: whatsapp, address: "whatsapp:+14155550177"}
  ops-local: {channel: whatsapp, address: "0415 555 0177"}
policies:
  - name: alert
    steps:
      - send: whatsapp
        to: ops-chat
        template: inquiry-reminder
""",
        capsys,
    )
    assert (code, out) == (1, "")
    assert err.splitlines() == [
        "rules.yaml:3:42: destinations.ops-chat.address: invalid whatsapp address 'whatsapp:+14155550177' "
        "(expected a phone number in E.164 form, e.g. +14155550123, without the whatsapp: prefix)",
        "rules.yaml:4:43: destinations.ops-local.address: invalid whatsapp address '0415 555 0177' "
        "(expected a phone number in E.164 form, e.g. +14155550123)",
        "rules.yaml: 2 problems; rules not valid",
    ]


def test_a_whatsapp_step_needs_a_template_with_a_whatsapp_or_sms_part(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = check(
        tmp_path,
        """version: 1
policies:
  - name: alert
    steps:
      - send: whatsapp
        template: inquiry-unanswered-ops
""",
        capsys,
    )
    assert code == 1
    assert err.splitlines()[0] == (
        "rules.yaml:6:19: policies[0].steps[0].template: template 'inquiry-unanswered-ops' has no whatsapp part "
        "(expected whatsapp.txt or sms.txt in templates/inquiry-unanswered-ops/en)"
    )


def test_a_valid_whatsapp_destination_and_a_template_with_only_an_sms_part_pass(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = check(
        tmp_path,
        """version: 1
destinations:
  ops-chat: {channel: whatsapp, address: "+14155550177"}
policies:
  - name: alert
    steps:
      - send: whatsapp
        to: ops-chat
        template: inquiry-reminder
""",
        capsys,
    )
    assert (code, err) == (0, "")
    assert out.startswith(f"{tmp_path / 'rules.yaml'}: ok")
