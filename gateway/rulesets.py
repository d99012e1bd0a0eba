"""The rules in force in one process, swapped only for a document that passed every check."""

from __future__ import annotations

import hashlib
import logging
import signal
from dataclasses import dataclass
from datetime import UTC, datetime

from gateway.config import Settings
from rules.model import Policy, RuleSet
from rules.problems import Problem, RulesError
from rules.validate import load_rules

log = logging.getLogger("parley.rules")


def digest(policy: Policy) -> str:
    """A policy's version: a digest of its compiled form, so equal policies share one snapshot."""
    return hashlib.sha256(policy.model_dump_json().encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Loaded:
    rules: RuleSet
    versions: dict[str, str]  # policy name -> digest
    loaded_at: datetime


class RulesHolder:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.current: Loaded | None = None
        self.generation = 0
        self.hangup = False  # set by SIGHUP; the API's reload watcher acts on it (a signal handler cannot await)

    def listen_for_hangup(self) -> None:
        """SIGHUP asks for a reload, which the API then shares with every other API process."""
        signal.signal(signal.SIGHUP, lambda *_: setattr(self, "hangup", True))

    def reload(self) -> list[Problem]:
        """Load the rules file; on any problem keep what we had and return the problems."""
        try:
            rules = load_rules(self.settings.rules_file, self.settings.templates_dir)
        except RulesError as exc:
            log.error("rules not reloaded (%d problems); keeping the rules in force", len(exc.problems))
            for problem in exc.problems:
                log.error("%s", problem)
            return exc.problems
        except OSError as exc:
            problem = Problem(1, 1, "(document)", f"cannot read: {exc.strerror}", str(self.settings.rules_file))
            log.error("%s", problem)
            return [problem]
        self.current = Loaded(rules, {p.name: digest(p) for p in rules.policies}, datetime.now(UTC))
        log.info("rules loaded: %s", ", ".join(f"{n}@{v}" for n, v in self.current.versions.items()))
        return []
