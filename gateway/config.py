"""config.yaml: server, Redis, tenants and their keys, and where the rules live.

The `rules` section (or a file it names) is checked by rules.validate; this
module checks everything else with the same file:line:column messages.
"""

from __future__ import annotations

import functools
import hashlib
import os
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from channels.providers import ProvidersConfig
from rules.durations import parse_duration
from rules.problems import Problem, Problems, RulesError
from rules.yamlpos import YamlSyntaxError, load_located

DEV_TENANT = "dev"
DEV_KEY = "dev-key"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class KeySpec(_Strict):
    """An API key, never written in the file itself: an environment variable or a SHA-256 hash."""

    env: str | None = None
    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")] | None = None


class TenantSpec(_Strict):
    keys: list[KeySpec] = []
    admin: bool = False  # may reload rules
    numbers: list[Annotated[str, Field(pattern=r"^\+[1-9][0-9]{6,14}$")]] = []  # its sender numbers (replies)
    proxy_numbers: list[Annotated[str, Field(pattern=r"^\+[1-9][0-9]{6,14}$")]] = []  # masking pool


class WebhookSpec(_Strict):
    """Where the providers' signing secrets come from (environment variables)."""

    twilio_auth_token_env: str = "TWILIO_AUTH_TOKEN"
    slack_signing_secret_env: str = "SLACK_SIGNING_SECRET"


class ServerSpec(_Strict):
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535)] = 8080
    max_body_bytes: Annotated[int, Field(ge=1024)] = 64 * 1024
    public_url: str | None = None


class RedisSpec(_Strict):
    url: str | None = None


class WorkerSpec(_Strict):
    lease: str = "60s"  # a worker that dies mid-job gives its notifications back after this

    @field_validator("lease")
    @classmethod
    def _lease(cls, value: str) -> str:
        parse_duration(value)
        return value


class ConfigFile(_Strict):
    server: ServerSpec = ServerSpec()
    redis: RedisSpec = RedisSpec()
    worker: WorkerSpec = WorkerSpec()
    webhooks: WebhookSpec = WebhookSpec()
    providers: ProvidersConfig = ProvidersConfig()
    data_dir: str = ".parley"
    retention: str = "7d"
    templates: str = "templates"
    tenants: dict[Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")], TenantSpec] = {}
    rules: dict[str, Any] | str

    @field_validator("retention")
    @classmethod
    def _retention(cls, value: str) -> str:
        parse_duration(value)
        return value


@dataclass(frozen=True)
class Tenant:
    name: str
    key_hashes: frozenset[str]
    admin: bool
    numbers: frozenset[str] = frozenset()
    proxy_numbers: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Settings:
    path: Path
    server: ServerSpec
    redis_url: str | None
    data_dir: Path
    retention: timedelta
    lease: timedelta
    templates_dir: Path
    rules_file: Path  # the file holding the rules (config.yaml itself for an inline section)
    tenants: dict[str, Tenant]
    twilio_auth_token: str | None = None
    slack_signing_secret: str | None = None
    providers: ProvidersConfig = field(default_factory=ProvidersConfig)

    def tenant_for_number(self, number: str) -> Tenant | None:
        return next((t for t in self.tenants.values() if number in t.numbers), None)

    def tenant_for_key(self, key: str) -> Tenant | None:
        # A lookup by the key's SHA-256: timing can tell at most which digests exist, never a key.
        return self._tenant_by_digest.get(hash_key(key))

    @functools.cached_property
    def _tenant_by_digest(self) -> dict[str, Tenant]:
        return {digest: t for t in self.tenants.values() for digest in t.key_hashes}


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def load_settings(path: Path, *, dev_key: bool = False, env: dict[str, str] | None = None) -> Settings:
    """Read config.yaml; with `dev_key` (parley up), tenant `dev` accepts `dev-key` unless tenants are configured."""
    environ = dict(os.environ) if env is None else env
    text = path.read_text(encoding="utf-8")
    try:
        located = load_located(text)
    except YamlSyntaxError as exc:
        raise RulesError(
            [Problem(exc.position.line, exc.position.column, "(document)", f"invalid YAML: {exc.message}", str(path))]
        ) from None
    problems = Problems(located, str(path))
    try:
        spec = ConfigFile.model_validate(located.data if isinstance(located.data, dict) else {})
    except ValidationError as exc:
        for error in exc.errors():
            loc = tuple(error["loc"])
            problems.add(loc, _message(error), at_key=error["type"] == "extra_forbidden")
        raise RulesError(problems.sorted()) from None
    tenants = _tenants(spec, environ, problems)
    _check_lease(spec, problems)
    if dev_key and not tenants:
        tenants[DEV_TENANT] = Tenant(DEV_TENANT, frozenset({hash_key(DEV_KEY)}), admin=True)
    if problems:
        raise RulesError(problems.sorted())
    base = path.parent
    return Settings(
        path=path,
        server=spec.server,
        redis_url=environ.get("REDIS_URL") or spec.redis.url,
        data_dir=base / spec.data_dir,
        retention=parse_duration(spec.retention),
        lease=parse_duration(spec.worker.lease),
        templates_dir=base / spec.templates,
        rules_file=base / spec.rules if isinstance(spec.rules, str) else path,
        tenants=tenants,
        twilio_auth_token=environ.get(spec.webhooks.twilio_auth_token_env) or None,
        slack_signing_secret=environ.get(spec.webhooks.slack_signing_secret_env) or None,
        providers=spec.providers,
    )


def _check_lease(spec: ConfigFile, problems: Problems) -> None:
    """A worker starts no provider call that could outlast its lease (channels.base.too_late), so
    a lease must leave room for calls: at least twice each provider's timeout."""
    lease = parse_duration(spec.worker.lease).total_seconds()
    for name in ProvidersConfig.model_fields:
        section = getattr(spec.providers, name)
        if section is not None and lease < 2 * section.timeout:
            problems.add(
                ("providers", name, "timeout"),
                f"worker.lease ({spec.worker.lease}) must be at least twice this timeout ({section.timeout:g}s): "
                "a worker sends only while a call can finish within its lease",
            )


def _tenants(spec: ConfigFile, environ: dict[str, str], problems: Problems) -> dict[str, Tenant]:
    tenants: dict[str, Tenant] = {}
    owners: dict[str, str] = {}
    key_owners: dict[str, str] = {}
    for name, tenant in spec.tenants.items():
        for i, number in enumerate(tenant.numbers):
            if owners.setdefault(number, name) != name:
                problems.add(
                    ("tenants", name, "numbers", i),
                    f"{number} already belongs to tenant {owners[number]!r}; replies could not be routed",
                )
        hashes: set[str] = set()
        for i, key in enumerate(tenant.keys):
            where = ("tenants", name, "keys", i)
            digest = _key_digest(key, environ, where, problems)
            if digest is not None and key_owners.setdefault(digest, name) != name:
                problems.add(where, f"the same API key as tenant {key_owners[digest]!r}; a key must name one tenant")
            elif digest is not None:
                hashes.add(digest)
        tenants[name] = Tenant(
            name, frozenset(hashes), tenant.admin, frozenset(tenant.numbers), frozenset(tenant.proxy_numbers)
        )
    return tenants


def _key_digest(key: KeySpec, environ: dict[str, str], where: tuple[str | int, ...], problems: Problems) -> str | None:
    if (key.env is None) == (key.sha256 is None):
        problems.add(where, "a key needs exactly one of env (an environment variable) or sha256")
    elif key.sha256 is not None:
        return key.sha256
    elif key.env is not None and environ.get(key.env):
        return hash_key(environ[key.env])
    else:
        problems.add((*where, "env"), f"environment variable {key.env} is not set")
    return None


def _message(error: Any) -> str:
    if error["type"] == "extra_forbidden":
        return f"unknown key {error['loc'][-1]!r}"
    if error["type"] == "missing":
        return f"missing required key {error['loc'][-1]!r}"
    return str(error["msg"]).removeprefix("Value error, ")
