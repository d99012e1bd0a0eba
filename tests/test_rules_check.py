"""`parley rules check`: one data file per failure, asserted against the exact output.

Each file in rules_cases/invalid/ and rules_cases/valid/ starts with `# expect:` lines:
the exact lines the check must print (stderr for problems, stdout for the ok summary),
with `{file}` for the checked path and `{templates}` for the test templates folder.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.cli import main

ROOT = Path(__file__).resolve().parents[1]
CASES = Path(__file__).resolve().parent / "rules_cases"
TEMPLATES = CASES / "templates"
INVALID = sorted((CASES / "invalid").glob("*.yaml"))
VALID = sorted((CASES / "valid").glob("*.yaml"))

REQUIRED_CASES = [
    "unknown_top_key",
    "unknown_step_key",
    "unknown_policy_key",
    "bad_duration",
    "zero_duration",
    "unknown_channel",
    "unknown_destination",
    "destination_channel_mismatch",
    "missing_template",
    "template_missing_channel_part",
    "template_missing_fallback_part",
    "fallback_cycle",
    "fallback_to_self",
    "trailing_wait",
    "duplicate_policy_name",
    "bridge_on_send",
    "bridge_to_self",
    "bad_quiet_hours_time",
    "quiet_hours_same_start_end",
    "unknown_until_event",
    "bad_repeat",
    "two_step_kinds",
    "empty_steps",
    "missing_version",
    "wrong_version",
    "duplicate_yaml_key",
    "invalid_yaml_syntax",
    "reserved_destination_name",
    "invalid_destination_address",
    "where_unknown_field",
    "first_of_single_channel",
    "only_waits",
    "several_problems_at_once",
    "empty_document",
    "scalar_document",
    "list_document",
    "policies_mapping",
    "steps_strings",
    "non_string_keys",
    "nulls_everywhere",
    "nulls_in_steps",
    "list_or_mapping_where_text_expected",
]


def expected_lines(case: Path, templates: Path = TEMPLATES) -> list[str]:
    """The `# expect:` lines at the top of a case file, with placeholders filled in."""
    lines = []
    for line in case.read_text(encoding="utf-8").splitlines():
        if not line.startswith("# expect: "):
            break
        text = line.removeprefix("# expect: ")
        lines.append(text.replace("{file}", str(case)).replace("{templates}", str(templates)))
    return lines


def check(capsys: pytest.CaptureFixture[str], file: Path, templates: Path | None = TEMPLATES) -> tuple[int, str, str]:
    argv = ["rules", "check", str(file)]
    if templates is not None:
        argv += ["--templates", str(templates)]
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def summary(file: Path, count: int) -> str:
    return f"{file}: {count} problem{'s' if count != 1 else ''}; rules not valid"


def test_every_required_case_exists() -> None:
    names = {case.stem for case in INVALID}
    assert sorted(set(REQUIRED_CASES) - names) == []


@pytest.mark.parametrize("case", INVALID, ids=lambda p: p.stem)
def test_invalid_case_reports_exactly_the_expected_problems(capsys: pytest.CaptureFixture[str], case: Path) -> None:
    expected = expected_lines(case)
    assert expected, f"{case.name} has no `# expect:` line"
    code, out, err = check(capsys, case)
    assert code == 1
    assert out == ""
    assert err.splitlines() == [*expected, summary(case, len(expected))]


def test_several_problems_are_all_reported(capsys: pytest.CaptureFixture[str]) -> None:
    case = CASES / "invalid" / "several_problems_at_once.yaml"
    code, _, err = check(capsys, case)
    assert code == 1
    problems = err.splitlines()[:-1]
    assert len(problems) >= 5
    assert len({line.split(": ", 2)[1] for line in problems}) == len(problems)  # each at its own path


@pytest.mark.parametrize("case", VALID, ids=lambda p: p.stem)
def test_valid_case_passes_with_one_line_summary(capsys: pytest.CaptureFixture[str], case: Path) -> None:
    code, out, err = check(capsys, case)
    assert (code, err) == (0, "")
    assert out.splitlines() == expected_lines(case)


def test_shipped_config_passes_with_shipped_templates(capsys: pytest.CaptureFixture[str]) -> None:
    config = ROOT / "config.yaml"
    code, out, err = check(capsys, config, templates=None)  # the `templates:` setting of config.yaml
    assert (code, err) == (0, "")
    assert out.startswith(f"{config}: ok: ")
    code, out2, _ = check(capsys, config, templates=ROOT / "templates")
    assert (code, out2) == (0, out)


def test_config_style_problem_has_rules_prefix_and_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(
        "templates: templates\n"
        "\n"
        "rules:\n"
        "  version: 1\n"
        "  policies:\n"
        "    - name: alert\n"
        "      template: full\n"
        "      steps:\n"
        "        - send: sms\n"
        "        - wait: 10 min\n"
        "        - send: email\n",
        encoding="utf-8",
    )
    code, _, err = check(capsys, config)
    assert code == 1
    assert err.splitlines() == [
        f"{config}:10:17: rules.policies[0].steps[1].wait: invalid duration '10 min' "
        "(expected a number and a unit s, m, h or d, e.g. 30s, 15m, 1h, 2d)",
        summary(config, 1),
    ]


def test_config_templates_setting_is_used_without_option(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    shutil.copytree(TEMPLATES, tmp_path / "tpl")
    config = tmp_path / "config.yaml"
    config.write_text(
        "templates: tpl\nrules:\n  version: 1\n  policies:\n    - name: ping\n      steps:\n"
        "        - send: sms\n          template: sms-only\n",
        encoding="utf-8",
    )
    code, out, _ = check(capsys, config, templates=None)
    assert (code, out) == (0, f"{config}: ok: 1 policy (ping)\n")


@pytest.mark.parametrize("text", ["", "\n", "   \n\n"], ids=["empty", "newline", "blank"])
def test_empty_file(capsys: pytest.CaptureFixture[str], tmp_path: Path, text: str) -> None:
    file = tmp_path / "rules.yaml"
    file.write_text(text, encoding="utf-8")
    code, _, err = check(capsys, file)
    assert code == 1
    assert err.splitlines() == [
        f"{file}:1:1: (document): expected a mapping with keys version, defaults, destinations, policies, got nothing",
        summary(file, 1),
    ]


def test_file_that_is_not_utf8(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    file = tmp_path / "rules.yaml"
    file.write_bytes(b"version: 1\npolicies: caf\xe9\n")
    code, _, err = check(capsys, file)
    assert code == 1
    assert err.splitlines() == [f"{file}:2:14: (document): not UTF-8 text (byte 0xe9)", summary(file, 1)]


def test_missing_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    file = tmp_path / "nope.yaml"
    code, _, err = check(capsys, file)
    assert (code, err) == (1, f"{file}: cannot read: No such file or directory\n")


def test_unreadable_template_yaml(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    templates = tmp_path / "templates"
    shutil.copytree(TEMPLATES / "sms-only", templates / "broken")
    (templates / "broken" / "template.yaml").write_text("default_locale: [en\n", encoding="utf-8")
    file = tmp_path / "rules.yaml"
    file.write_text("version: 1\npolicies:\n  - name: a\n    steps:\n      - send: sms\n        template: broken\n")
    code, _, err = check(capsys, file, templates)
    assert code == 1
    meta = templates / "broken" / "template.yaml"
    assert err.splitlines() == [
        f"{file}:6:19: policies[0].steps[0].template: template 'broken' has an invalid {meta}: "
        "expected ',' or ']', but got '<stream end>' (line 2)",
        summary(file, 1),
    ]


def test_template_default_locale_is_read(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    templates = tmp_path / "templates"
    shutil.copytree(TEMPLATES / "sms-only" / "en", templates / "german" / "de")
    (templates / "german" / "template.yaml").write_text("default_locale: de\n", encoding="utf-8")
    file = tmp_path / "rules.yaml"
    file.write_text("version: 1\npolicies:\n  - name: a\n    template: german\n    steps:\n      - send: [sms, push]\n")
    code, _, err = check(capsys, file, templates)
    assert code == 1
    assert err.splitlines()[0] == (
        f"{file}:6:9: policies[0].steps[0]: template 'german' has no push part "
        f"(expected push.title.txt and push.body.txt in {templates / 'german' / 'de'})"
    )


def test_console_script_prints_problems_to_stderr() -> None:
    parley = Path(sys.executable).with_name("parley")
    if not parley.exists():
        pytest.skip("the parley console script is not installed")
    case = CASES / "invalid" / "unknown_channel.yaml"
    result = subprocess.run(
        [str(parley), "rules", "check", str(case), "--templates", str(TEMPLATES)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [*expected_lines(case), summary(case, 1)]
