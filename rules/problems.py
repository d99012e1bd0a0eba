"""Collecting validation problems with their place in the source document."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rules.yamlpos import Located, Path, Position, format_path


@dataclass(frozen=True, order=True)
class Problem:
    line: int
    column: int
    path: str
    message: str
    source: str = ""

    def __str__(self) -> str:
        return f"{self.source}:{self.line}:{self.column}: {self.path}: {self.message}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "file": self.source,
            "line": self.line,
            "column": self.column,
            "path": self.path,
            "message": self.message,
        }


@dataclass
class Problems:
    """Problems found in one document; every check adds to it and none stops early."""

    located: Located
    source: str
    items: list[Problem] = field(default_factory=list)

    def add(self, path: Path, message: str, *, at_key: bool = False) -> None:
        pos: Position = self.located.position(path, key=at_key)
        self.items.append(Problem(pos.line, pos.column, format_path(path), message, self.source))

    def sorted(self) -> list[Problem]:
        return sorted(set(self.items))

    def __bool__(self) -> bool:
        return bool(self.items)


class RulesError(Exception):
    """A rules document that must not be applied; carries every problem found."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems


def field_problem(error: Any) -> dict[str, str]:
    """One pydantic error as {path, message} in the words the API and the CLI use for a bad intent."""
    path = format_path(tuple(error["loc"])) if error["loc"] else "(body)"
    message = "unknown field" if error["type"] == "extra_forbidden" else str(error["msg"]).removeprefix("Value error, ")
    return {"path": path, "message": message}
