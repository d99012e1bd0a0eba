"""Checking the templates folder with the rules: part files compile, variables are provided.

Problems (the rules are not applied): a part file that does not compile in the
sandboxed environment (a Jinja syntax error, an unknown filter), or a
push.data.yaml that is not a flat mapping, each with its file and line.

Warnings (printed by `parley rules check`, never blocking): a variable a part
file uses that no example intent provides (templates/<name>/example.json, an
intent body as POSTed to /v1/notifications), a template without example.json,
an invalid example.json, a file in a locale folder that is not a part file.
A use guarded by `is defined` or `| default(...)` is not reported.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from jinja2 import TemplateSyntaxError, meta, nodes
from pydantic import ValidationError

from channels.rendering.parts import PartError, parse_push_data
from channels.rendering.render import context_for
from channels.rendering.templating import PART_FILES, PERSON_FIELDS, ROOTS, Environments
from rules.catalog import Catalog
from rules.intent import Intent
from rules.problems import Problem

EXAMPLE = "example.json"
GUARDS = frozenset({"defined", "undefined", "default", "d"})
Chain = tuple[str, ...]


def check_templates(catalog: Catalog) -> tuple[list[Problem], list[Problem]]:
    """(problems, warnings) for every template folder in the catalog."""
    envs = Environments(catalog.root)
    problems: list[Problem] = []
    warnings: list[Problem] = []
    for name in sorted(catalog.templates):
        folder = catalog.root / name
        contexts = _examples(folder, warnings)
        for locale in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
            for file in sorted(p for p in locale.iterdir() if p.is_file() and not p.name.startswith(".")):
                if file.name not in PART_FILES:
                    warnings.append(_at(file, 1, f"not a part file (expected one of {', '.join(sorted(PART_FILES))})"))
                    continue
                used = _compile(envs, catalog.root, file, problems)
                if contexts:
                    warnings.extend(_unprovided(file, used, contexts))
    return problems, warnings


def _at(file: Path, line: int, message: str) -> Problem:
    return Problem(line, 1, "(template)", message, str(file))


def _examples(folder: Path, warnings: list[Problem]) -> list[dict[str, Any]]:
    """The render contexts of the template's example intent (none when missing or invalid)."""
    file = folder / EXAMPLE
    if not file.is_file():
        warnings.append(_at(file, 1, f"template {folder.name!r} has no {EXAMPLE}: its variables are not checked"))
        return []
    try:
        text = file.read_text(encoding="utf-8")
        intent = Intent.model_validate_json(text)
    except (OSError, UnicodeDecodeError) as exc:
        warnings.append(_at(file, 1, f"cannot read: {exc}"))
        return []
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(x) for x in error["loc"]) or "(body)"
        line = _json_line(text, error)
        warnings.append(_at(file, line, f"not a valid intent: {where}: {error['msg']}"))
        return []
    return [context_for(intent, intent.recipient)]


def _json_line(text: str, error: Any) -> int:
    if error["type"] == "json_invalid":
        try:
            json.loads(text)
        except json.JSONDecodeError as exc:
            return exc.lineno
    return 1


def _compile(envs: Environments, root: Path, file: Path, problems: list[Problem]) -> dict[Chain, int]:
    """The variables a part file uses (chain -> first line); a problem when it does not compile."""
    env = envs.for_file(file.name)
    name = file.relative_to(root).as_posix()
    try:
        source = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(_at(file, 1, f"cannot read: {exc}"))
        return {}
    pieces = [(source, 0)]
    if file.name == "push.data.yaml":
        try:
            pieces = [(value, _line_of_key(source, key) - 1) for key, value in parse_push_data(source).items()]
        except PartError as exc:
            problems.append(_at(file, exc.line, exc.message))
            return {}
    used: dict[Chain, int] = {}
    for text, offset in pieces:
        try:
            env.compile(text, name, str(file))
            ast = env.parse(text, name, str(file))
        except TemplateSyntaxError as exc:
            problems.append(_at(file, (exc.lineno or 1) + offset, f"template syntax: {exc.message}"))
            continue
        for chain, line in uses(ast).items():
            used.setdefault(chain, line + offset)
    return used


def _line_of_key(source: str, key: str) -> int:
    for number, line in enumerate(source.splitlines(), start=1):
        if line.lstrip("'\"").startswith(key):
            return number
    return 1


def uses(ast: nodes.Template) -> dict[Chain, int]:
    """Variable chains (`data.listing`) a template reads outside `is defined` / `default` guards."""
    found: dict[Chain, int] = {}
    undeclared = meta.find_undeclared_variables(ast)
    _walk(ast, found, frozenset())
    return {c: line for c, line in found.items() if c[0] in ROOTS or (len(c) == 1 and c[0] in undeclared)}


def _walk(node: nodes.Node, found: dict[Chain, int], guarded: frozenset[Chain]) -> None:
    if isinstance(node, (nodes.Test, nodes.Filter)) and node.name in GUARDS:
        _walk_all(node.iter_child_nodes(exclude=("node",)), found, guarded)
        return
    if isinstance(node, nodes.If):
        _walk(node.test, found, guarded)
        _walk_all(node.body, found, guarded | _defined(node.test))
        _walk_all([*node.elif_, *node.else_], found, guarded)
        return
    if isinstance(node, nodes.Call) and isinstance(node.node, nodes.Getattr):  # a method: data.items()
        _walk(node.node.node, found, guarded)
        _walk_all(node.iter_child_nodes(exclude=("node",)), found, guarded)
        return
    chain = _chain(node)
    if chain is not None:
        if not any(chain[: len(g)] == g for g in guarded):
            found.setdefault(chain, node.lineno)
        return
    _walk_all(node.iter_child_nodes(), found, guarded)


def _walk_all(children: Iterable[nodes.Node], found: dict[Chain, int], guarded: frozenset[Chain]) -> None:
    for child in children:
        _walk(child, found, guarded)


def _defined(test: nodes.Node) -> frozenset[Chain]:
    """Chains an `if` test proves defined: `x is defined`, also inside `and`."""
    if isinstance(test, nodes.Test) and test.name == "defined":
        chain = _chain(test.node)
        return frozenset({chain}) if chain else frozenset()
    if isinstance(test, nodes.And):
        return _defined(test.left) | _defined(test.right)
    return frozenset()


def _chain(node: nodes.Node) -> Chain | None:
    if isinstance(node, nodes.Name) and node.ctx == "load":
        return (node.name,)
    if isinstance(node, nodes.Getattr):
        base = _chain(node.node)
        return (*base, node.attr) if base else None
    if isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, (str, int)):
        base = _chain(node.node)
        return (*base, str(node.arg.value)) if base else None
    return None


def _unprovided(file: Path, used: dict[Chain, int], contexts: list[dict[str, Any]]) -> list[Problem]:
    warnings = []
    for chain, line in sorted(used.items(), key=lambda item: (item[1], item[0])):
        dotted = ".".join(chain)
        if chain[0] not in ROOTS:
            warnings.append(_at(file, line, f"{dotted!r} is undefined (a template can use {', '.join(ROOTS)})"))
        elif chain[0] in ROOTS[2:] and len(chain) > 1 and chain[1] not in PERSON_FIELDS:
            warnings.append(_at(file, line, f"{dotted} is never available (a template sees only {', '.join(PERSON_FIELDS)} of a person)"))  # fmt: skip
        elif not any(provides(context, chain) for context in contexts):
            warnings.append(_at(file, line, f"{dotted} is used but no example intent provides it ({EXAMPLE})"))
    return warnings


def provides(context: dict[str, Any], chain: Chain) -> bool:
    value: Any = context
    for key in chain:
        if isinstance(value, dict):
            if key not in value:
                return False
            value = value[key]
        elif isinstance(value, list):
            if not key.isdigit() or int(key) >= len(value):
                return False
            value = value[int(key)]
        else:
            return value is not None  # an attribute of a text or number: not ours to judge
    return True
