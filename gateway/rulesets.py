"""The rules in force in one process, swapped only for a document that passed every check.

A reload while serving (POST /v1/admin/rules/reload, SIGHUP, another API process's reload) reads,
parses and checks the file in a worker thread, so the event loop keeps answering meanwhile, and
gives up after RELOAD_TIME_LIMIT_S: the rules in force are kept and the problem says so. The
thread cannot be stopped; it runs to its end (bounded by the YAML limits of rules/yamlpos.py) and
its result is dropped. Only the event loop swaps `current`, and only for a load that finished in
time, so a late one can never replace the rules in force after its caller was told they stay.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import signal
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from channels.rendering.check import check_templates
from gateway.config import Settings
from rules import validate
from rules.model import Policy, RuleSet
from rules.problems import Problem, RulesError

log = logging.getLogger("parley.rules")

# A rules file near the YAML size limit loads in seconds on a slow machine; a usual one in well under one.
RELOAD_TIME_LIMIT_S = 5.0


def load_rules(file: Path, templates: Path | None = None, warnings: list[Problem] | None = None) -> RuleSet:
    """A rules file and the templates folder with it, each checked (rules/validate.py for the rules,
    channels/rendering/check.py for the templates): what the gateway loads and `parley rules check` checks."""
    return validate.load_rules(file, templates, warnings, check_templates=check_templates)


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
        # One load at a time: a reload that timed out keeps this until its thread ends, so reloads asked for
        # meanwhile queue behind it instead of piling up threads that parse side by side.
        self._loading = threading.Lock()

    def listen_for_hangup(self) -> None:
        """SIGHUP asks for a reload, which the API then shares with every other API process."""
        signal.signal(signal.SIGHUP, lambda *_: setattr(self, "hangup", True))

    def reload(self) -> list[Problem]:
        """Load the rules file here and now (start-up); on any problem keep what we had and return the problems."""
        return self._apply(self._load())

    async def reload_async(self, timeout: float = RELOAD_TIME_LIMIT_S) -> list[Problem]:
        """As reload, in a worker thread and within `timeout` seconds; past it, the rules in force stay."""
        abandoned = threading.Event()
        try:
            outcome = await asyncio.wait_for(asyncio.to_thread(self._load_alone, abandoned), timeout)
        except TimeoutError:
            abandoned.set()
            return self._apply([self._problem(f"took longer than {timeout:g} s; the rules in force are kept")])
        return self._apply(outcome)

    def _load_alone(self, abandoned: threading.Event) -> Loaded | list[Problem]:
        with self._loading:
            if abandoned.is_set():  # its caller gave up while an earlier load held the lock: not worth loading
                return [self._problem("not loaded: an earlier reload was still running")]
            return self._load()

    def _load(self) -> Loaded | list[Problem]:
        """Read and check the rules file: the rules with their versions, or every problem found."""
        try:
            rules = load_rules(self.settings.rules_file, self.settings.templates_dir)
        except RulesError as exc:
            return exc.problems
        except OSError as exc:
            return [self._problem(f"cannot read: {exc.strerror}")]
        return Loaded(rules, {p.name: digest(p) for p in rules.policies}, datetime.now(UTC))

    def _problem(self, message: str) -> Problem:
        return Problem(1, 1, "(document)", message, str(self.settings.rules_file))

    def _apply(self, outcome: Loaded | list[Problem]) -> list[Problem]:
        if isinstance(outcome, list):
            log.error("rules not reloaded (%d problems); keeping the rules in force", len(outcome))
            for problem in outcome:
                log.error("%s", problem)
            return outcome
        self.current = outcome
        log.info("rules loaded: %s", ", ".join(f"{n}@{v}" for n, v in outcome.versions.items()))
        return []
