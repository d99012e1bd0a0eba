"""The examples in docs/*.md are tested. Fenced code blocks are picked by their info string:

    ```yaml rules-ok            a full rules document: compile_rules accepts it (the repo's templates/)
    ```yaml rules-ok:FILE       the same, and it is written to FILE for the page's later blocks
    ```yaml rules-error         a rules document `parley rules check rules.yaml` rejects; the block right
    ```yaml rules-error:FILE    after it is a ```text block holding that command's exact output
    ```yaml config[:FILE]       a config.yaml (FILE defaults to config.yaml): load_settings accepts it with
                                every `env:` key variable set, and the rules it names compile
    ```json intent:FILE         an intent, written to FILE
    ```console                  `$ parley ...` commands, each followed by its exact output (stdout, then
                                stderr)
    ```yaml                     (no tag) a fragment: it must not be a full rules document or config

Every rules-error, config and console block runs in a fresh folder holding the repo's templates/
(as `templates`) and every file block that comes before it on its page, a later block with the same
FILE replacing an earlier one. `parley simulate` commands must pass --at, so their output is fixed.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.cli import main
from gateway.config import ConfigFile, load_settings
from gateway.metrics import Snapshot
from gateway.rulesets import load_rules
from gateway.state import keys
from rules.catalog import Catalog
from rules.problems import RulesError
from rules.validate import compile_rules

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
TEMPLATES = REPO / "templates"
FILE_TAGS = ("rules-ok", "rules-error", "config", "intent")
DEFAULT_FILES = {"rules-error": "rules.yaml", "config": "config.yaml"}


@dataclass(frozen=True)
class Block:
    page: str
    line: int  # of the opening fence, 1-based
    lang: str
    tag: str  # "" when untagged; "rules-ok", "intent", ...
    file: str | None  # the FILE of `tag:FILE`, or the tag's default
    text: str

    @property
    def id(self) -> str:
        return f"{self.page}:{self.line}"


def parse_blocks(page: Path) -> list[Block]:
    blocks: list[Block] = []
    lines = page.read_text(encoding="utf-8").splitlines()
    opened: tuple[int, str] | None = None
    body: list[str] = []
    for number, line in enumerate(lines, start=1):
        if opened is None and line.startswith("```"):
            opened, body = (number, line[3:].strip()), []
        elif opened is not None and line.rstrip() == "```":
            start, info = opened
            lang, _, rest = info.partition(" ")
            tag, _, file = rest.strip().partition(":")
            blocks.append(Block(page.name, start, lang, tag, file or DEFAULT_FILES.get(tag), "\n".join(body) + "\n"))
            opened = None
        elif opened is not None:
            body.append(line)
    assert opened is None, f"{page.name}:{opened[0]}: unclosed code block"
    return blocks


PAGES = sorted(DOCS.glob("*.md"))
BLOCKS = [block for page in PAGES for block in parse_blocks(page)]


def blocks_with(tag: str, lang: str | None = None) -> list[Any]:
    found = [b for b in BLOCKS if b.tag == tag and (lang is None or b.lang == lang)]
    return [pytest.param(b, id=b.id) for b in found]


def after(block: Block) -> Block | None:
    index = BLOCKS.index(block)
    following = BLOCKS[index + 1] if index + 1 < len(BLOCKS) else None
    return following if following is not None and following.page == block.page else None


@contextlib.contextmanager
def workspace(block: Block, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A folder with templates/ and the page's file blocks up to and including `block`."""
    (tmp_path / "templates").symlink_to(TEMPLATES, target_is_directory=True)
    for earlier in BLOCKS[: BLOCKS.index(block) + 1]:
        if earlier.page == block.page and earlier.tag in FILE_TAGS and earlier.file:
            (tmp_path / earlier.file).write_text(earlier.text, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    yield tmp_path


def run_parley(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse refusing the command line
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_the_docs_have_tested_examples() -> None:
    names = {p.name for p in PAGES}
    assert {"policies.md", "api.md", "deployment.md"} <= names
    assert blocks_with("rules-ok") and blocks_with("rules-error") and blocks_with("config")
    assert any(b.lang == "console" for b in BLOCKS)


@pytest.mark.parametrize("block", blocks_with("rules-ok", "yaml"))
def test_rules_ok_blocks_compile(block: Block) -> None:
    try:
        rules = compile_rules(block.text, block.file or "rules.yaml", Catalog.scan(TEMPLATES))
    except RulesError as exc:
        pytest.fail(f"{block.id}: the example is not valid:\n{exc}")
    assert rules.policies


@pytest.mark.parametrize("block", blocks_with("rules-error", "yaml"))
def test_rules_error_blocks_print_the_documented_problems(
    block: Block, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    expected = after(block)
    assert expected is not None and expected.lang == "text" and not expected.tag, (
        f"{block.id}: a rules-error block must be followed by a ```text block with the expected output"
    )
    assert block.file is not None
    with workspace(block, tmp_path, monkeypatch):
        code, out, err = run_parley(["rules", "check", block.file], capsys)
    assert (code, out) == (1, "")
    assert err == expected.text, f"{block.id}: `parley rules check {block.file}` printed:\n{err}"


@pytest.mark.parametrize("block", blocks_with("config", "yaml"))
def test_config_blocks_load(block: Block, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = yaml.safe_load(block.text)
    env = {
        key["env"]: f"test-{key['env'].lower()}"
        for tenant in (data.get("tenants") or {}).values()
        for key in tenant.get("keys", [])
        if "env" in key
    }
    assert block.file is not None
    with workspace(block, tmp_path, monkeypatch) as folder:
        settings = load_settings(folder / block.file, env=env)
        rules = load_rules(settings.rules_file, settings.templates_dir)
    assert rules.policies
    for name, tenant in settings.tenants.items():
        assert tenant.key_hashes, f"{block.id}: tenant {name} has no key"


@pytest.mark.parametrize("block", [b for b in BLOCKS if b.lang == "console"], ids=lambda b: b.id)
def test_console_blocks_print_what_they_show(
    block: Block, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    commands = console_commands(block)
    assert commands, f"{block.id}: a console block without a `$ ` command"
    with workspace(block, tmp_path, monkeypatch):
        for command, expected in commands:
            argv = shlex.split(command)
            assert argv[0] == "parley", f"{block.id}: only parley commands are run: {command}"
            if argv[1] == "simulate":
                assert "--at" in argv, f"{block.id}: give simulate --at so the output is fixed: {command}"
            code, out, err = run_parley(argv[1:], capsys)
            assert out + err == expected, f"{block.id}: `{command}` printed:\n{out}{err}"
            assert code == 0 or err, f"{block.id}: `{command}` exited {code} without saying why"


def console_commands(block: Block) -> list[tuple[str, str]]:
    """[(command, expected output)] from `$ command` lines (a trailing \\ continues the command)."""
    result: list[tuple[str, list[str]]] = []
    continued = False
    for line in block.text.splitlines():
        if continued:
            result[-1] = (result[-1][0] + " " + line.strip().removesuffix("\\").strip(), result[-1][1])
            continued = line.rstrip().endswith("\\")
        elif line.startswith("$ "):
            result.append((line[2:].removesuffix("\\").strip(), []))
            continued = line.rstrip().endswith("\\")
        else:
            assert result, f"{block.id}: output before the first `$ ` command"
            result[-1][1].append(line)
    return [(command, "".join(f"{line}\n" for line in output)) for command, output in result]


@pytest.mark.parametrize("block", [b for b in BLOCKS if b.lang in ("yaml", "yml") and not b.tag], ids=lambda b: b.id)
def test_untagged_yaml_is_only_a_fragment(block: Block) -> None:
    try:
        data = yaml.safe_load(block.text)
    except yaml.YAMLError:
        return
    if isinstance(data, dict):
        assert not {"version", "rules", "tenants"} & data.keys(), (
            f"{block.id}: a full rules document or config must be tagged rules-ok, rules-error or config"
        )


@pytest.mark.parametrize("block", blocks_with("intent", "json"))
def test_intent_blocks_are_json(block: Block) -> None:
    assert isinstance(json.loads(block.text), dict)
    assert block.file and block.file.endswith(".json")


def test_tags_are_known() -> None:
    for block in BLOCKS:
        assert block.tag in ("", *FILE_TAGS), f"{block.id}: unknown tag {block.tag!r}"
        if block.tag in ("rules-ok", "rules-error", "config"):
            assert block.lang == "yaml", block.id


def slug(heading: str) -> str:
    """A heading's anchor as GitHub makes it: lowercase, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_links_between_pages_resolve(page: Path) -> None:
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.DOTALL)
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target):
            continue  # http:, https:, mailto:
        file, _, anchor = target.partition("#")
        path = (page.parent / file).resolve() if file else page
        assert path.exists(), f"{page.name}: link to a missing file: {target}"
        if anchor and path.suffix == ".md":
            headings = re.findall(r"^#+ (.+)$", path.read_text(encoding="utf-8"), flags=re.MULTILINE)
            assert anchor in {slug(h) for h in headings}, f"{page.name}: link to a missing heading: {target}"


# -- reference tables that must follow the code -------------------------------------------------


def test_every_redis_key_is_documented() -> None:
    text = (DOCS / "deployment.md").read_text(encoding="utf-8")
    patterns = [keys.METRICS, f"rq:queue:{keys.QUEUE}"]
    not_keys = {"new_id", "shard_of", "notification_prefix"}
    for name, function in vars(keys).items():
        if callable(function) and getattr(function, "__module__", "") == keys.__name__ and name[0] != "_":
            if name in not_keys:
                continue
            params = list(inspect.signature(function).parameters.values())
            args = [(f"<{p.name}>",) * 2 if "tuple" in str(p.annotation) else f"<{p.name}>" for p in params]
            # a notification's keys take its shard from its id: the docs write it `{<shard>}`
            rendered = function(*args).replace("{0}", "{<shard>}")
            if not rendered.startswith(keys.PREFIX):
                continue
            # a hashed part (the phone index) cannot be spelled out: then its prefix is enough
            patterns.append(rendered if all(f"<{p.name}>" in rendered for p in params) else rendered.split("<")[0])
    missing = [p for p in patterns if f"`{p}" not in text]
    assert not missing, f"docs/deployment.md does not describe these Redis keys: {missing}"


def test_every_metric_is_documented() -> None:
    text = (DOCS / "api.md").read_text(encoding="utf-8")
    names = [family.name for family in Snapshot({}, 0, 0).collect()]
    missing = [n for n in names if not re.search(rf"`{n}(_total)?[`{{]", text)]
    assert not missing, f"docs/api.md does not describe these metrics: {missing}"


def test_every_config_key_is_documented() -> None:
    text = (DOCS / "deployment.md").read_text(encoding="utf-8")

    def walk(model: Any, prefix: str) -> Iterator[str]:
        for name, field in model.model_fields.items():
            annotation = field.annotation
            if isinstance(annotation, type) and hasattr(annotation, "model_fields") and name != "tenants":
                yield from walk(annotation, f"{prefix}{name}.")
            else:
                yield f"{prefix}{name}"

    missing = [k for k in walk(ConfigFile, "") if f"`{k}`" not in text]
    assert not missing, f"docs/deployment.md does not describe these config keys: {missing}"
