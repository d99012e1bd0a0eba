"""config.yaml: server, Redis, tenants and their keys, and where the rules live.

The `rules` section (or a file it names) is checked by rules.validate; this
module checks everything else with the same file:line:column messages.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import limits
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from channels.providers import ProvidersConfig
from gateway.access import DEFAULT_ROLES, ApiKey, KeyRing, Role, Tenant, hash_key
from gateway.state import connection
from gateway.state.connection import NO_WAIT, ReplicaWait
from rules.durations import parse_duration
from rules.phone import OwnNumber
from rules.problems import Problem, Problems, RulesError
from rules.yamlpos import YamlSyntaxError, load_located

DEV_TENANT = "dev"
DEV_KEY = "dev-key"
PUBLIC_URL_NEEDED = (
    "Twilio webhooks are configured (the Twilio auth token is set) but server.public_url is not; "
    "set it to the URL Twilio reaches Parley on (see docs/deployment.md)"
)


LimitText = Annotated[str, Field(max_length=200)]


class RateLimitSpec(BaseModel):
    """Limits by scope in `limits`' notation; several are joined with ';' ("20/second;1000/hour")."""

    model_config = ConfigDict(extra="forbid")

    ingest: LimitText | None = None
    events: LimitText | None = None
    masking: LimitText | None = None
    calls: LimitText | None = None
    previews: LimitText | None = None
    read: LimitText | None = None
    admin: LimitText | None = None

    @field_validator("*")
    @classmethod
    def _parse(cls, value: str | None) -> str | None:
        return None if value is None else cls.check(value)

    @staticmethod
    def check(value: str) -> str:
        try:
            limits.parse_many(value)
        except ValueError:
            raise ValueError(f"{value!r} is not a rate limit such as '100/second' or '20/second;1000/hour'") from None
        return value

    @classmethod
    def defaults(cls) -> RateLimitSpec:
        # Far above what one marketplace sends by accident (1,000 intents a second is 86 million a
        # day), low enough that a runaway loop or a leaked key cannot take the gateway for itself.
        return cls(ingest="1000/second", events="1000/second", masking="100/second", calls="10/second",
                   previews="20/second", read="200/second", admin="10/second")  # fmt: skip

    def given(self) -> dict[str, str]:
        return {name: value for name, value in self.model_dump().items() if value is not None}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class KeySpec(_Strict):
    """An API key, never written in the file itself: an environment variable or a SHA-256 hash."""

    env: str | None = None
    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")] | None = None
    id: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")] | None = None  # default: sha256:<8 hex>
    roles: Annotated[list[Role], Field(min_length=1)] | None = None  # default: all but admin (docs/security.md)
    expires: datetime | None = None  # refused from this instant on (with a time zone)
    rate_limits: RateLimitSpec | None = None  # this key's own limits, on top of its tenant's

    @field_validator("expires")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("give the expiry with a time zone, e.g. 2027-01-31T00:00:00Z")
        return value


class TenantSpec(_Strict):
    keys: list[KeySpec] = []
    admin: bool = False  # an operator tenant: its keys with the admin role may reload the rules
    rate_limits: RateLimitSpec | None = None  # replaces server.rate_limits' values for this tenant
    numbers: list[OwnNumber] = []  # its sender numbers (replies)
    proxy_numbers: list[OwnNumber] = []  # masking pool


class WebhookSpec(_Strict):
    """Where the providers' signing secrets come from (environment variables)."""

    twilio_auth_token_env: str = "TWILIO_AUTH_TOKEN"
    slack_signing_secret_env: str = "SLACK_SIGNING_SECRET"


class ServerSpec(_Strict):
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535)] = 8080
    max_body_bytes: Annotated[int, Field(ge=1024, le=16 * 1024 * 1024)] = 64 * 1024
    max_webhook_bytes: Annotated[int, Field(ge=1024, le=16 * 1024 * 1024)] = 64 * 1024
    public_url: str | None = None
    docs: bool = True  # serve /docs and /openapi.json
    # A line per request (uvicorn.access). Off where a proxy or load balancer logs requests already: it is
    # ~10 % of the API's CPU per intent (python -m bench, ingest; docs/benchmarks.md).
    access_log: bool = True
    rate_limits: RateLimitSpec = RateLimitSpec.defaults()
    auth_failures: Annotated[str, Field(max_length=200)] = "20/minute"  # per client address

    @field_validator("auth_failures")
    @classmethod
    def _auth_failures(cls, value: str) -> str:
        return RateLimitSpec.check(value)


class AuditSpec(_Strict):
    retention: str = "90d"  # entries older than this are dropped
    max_entries: Annotated[int, Field(ge=100, le=10_000_000)] = 100_000  # per tenant, newest kept

    @field_validator("retention")
    @classmethod
    def _retention(cls, value: str) -> str:
        parse_duration(value)
        return value


class RedisSpec(_Strict):
    url: str | None = (
        None  # redis://, rediss://, unix://, redis+sentinel:// or redis+cluster:// (gateway/state/connection.py)
    )
    # RQ's queue: the state Redis unless given; required beside a cluster (RQ's commands span slots)
    queue_url: str | None = None
    # How many shards new notifications are spread over (gateway/state/keys.py): 16 on a cluster, else 1
    shards: Annotated[int, Field(ge=1, le=256)] | None = None
    wait_replicas: Annotated[int, Field(ge=0, le=100)] = 0  # replicas that must have a stop before it is answered
    wait_timeout: str = "1s"  # how long a stop waits for them: "500ms", "1s"; then 503 not_replicated

    @field_validator("url", "queue_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None:
            connection.parse(value)
        return value

    @field_validator("wait_timeout")
    @classmethod
    def _wait_timeout(cls, value: str) -> str:
        connection.wait_ms(value)
        return value


class WorkerSpec(_Strict):
    lease: str = "60s"  # a worker that dies mid-job gives its notifications back after this
    # Notifications one worker process runs at once; their provider calls are bounded per provider too
    # (providers.*.max_in_flight, providers.email.max_sessions). A few KiB of memory each.
    in_flight: Annotated[int, Field(ge=1, le=100_000)] = 500

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
    audit: AuditSpec = AuditSpec()
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
    audit: AuditSpec = field(default_factory=AuditSpec)
    redis_wait: ReplicaWait = NO_WAIT  # redis.wait_replicas and redis.wait_timeout
    redis_queue_url: str | None = None  # RQ's Redis when not the state Redis (redis.queue_url)
    redis_shards: int = 1  # redis.shards
    in_flight: int = 500  # worker.in_flight
    dev_key: bool = False  # loaded by `parley up`: tenant `dev` takes `dev-key` when no tenant is configured
    # The environment the keys were read from: a reload reads keys named by `env:` from it again (a
    # process's environment does not change while it runs; rotate by sha256, or by restarting).
    environ: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)

    @property
    def public_url_missing(self) -> bool:
        """Twilio webhooks are configured but server.public_url is not: behind a proxy every signature
        would fail, and the URL checked would be whatever Host the request names."""
        return bool(self.twilio_auth_token) and not self.server.public_url

    def tenant_for_number(self, number: str) -> Tenant | None:
        return next((t for t in self.tenants.values() if number in t.numbers), None)

    def not_for_pool(self, tenant: str) -> frozenset[str]:
        """Numbers `tenant` may not add to its masking pool: every tenant's reply numbers, every provider
        sender number, and the proxy numbers configured for other tenants (even before their pools load)."""
        others = (n for t in self.tenants.values() if t.name != tenant for n in t.proxy_numbers)
        return self._reserved_numbers.union(others)

    @functools.cached_property
    def _reserved_numbers(self) -> frozenset[str]:
        return self.providers.sender_numbers().union(*(t.numbers for t in self.tenants.values()))

    def tenant_for_key(self, key: str) -> Tenant | None:
        found = self.keyring.find(key)
        return found.tenant if found is not None else None

    @functools.cached_property
    def keyring(self) -> KeyRing:
        """The keys as loaded at start; the API swaps in a newer ring on a reload (gateway.http.app)."""
        return KeyRing(self.tenants.values())


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
    _check_redis_env(environ, problems)
    redis_url = environ.get("REDIS_URL") or spec.redis.url
    queue_url = environ.get("REDIS_QUEUE_URL") or spec.redis.queue_url
    _check_cluster(spec.redis, redis_url, queue_url, problems)
    if dev_key and not tenants:
        key = ApiKey("dev-key", hash_key(DEV_KEY), DEFAULT_ROLES | {Role.ADMIN})
        tenants[DEV_TENANT] = Tenant(DEV_TENANT, (key,), admin=True)
    if problems:
        raise RulesError(problems.sorted())
    base = path.parent
    return Settings(
        path=path,
        server=spec.server,
        redis_url=redis_url,
        redis_queue_url=queue_url,
        redis_shards=spec.redis.shards or (16 if redis_url and connection.is_cluster(redis_url) else 1),
        data_dir=base / spec.data_dir,
        retention=parse_duration(spec.retention),
        lease=parse_duration(spec.worker.lease),
        in_flight=spec.worker.in_flight,
        templates_dir=base / spec.templates,
        rules_file=base / spec.rules if isinstance(spec.rules, str) else path,
        tenants=tenants,
        twilio_auth_token=environ.get(spec.webhooks.twilio_auth_token_env) or None,
        slack_signing_secret=environ.get(spec.webhooks.slack_signing_secret_env) or None,
        providers=spec.providers,
        audit=spec.audit,
        redis_wait=ReplicaWait(spec.redis.wait_replicas, connection.wait_ms(spec.redis.wait_timeout)),
        dev_key=dev_key,
        environ=environ,
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


def _check_redis_env(environ: dict[str, str], problems: Problems) -> None:
    """REDIS_URL and REDIS_QUEUE_URL, which win over redis.url and redis.queue_url, checked as those are
    (the file's own are checked by RedisSpec)."""
    for variable, field_name in (("REDIS_URL", "url"), ("REDIS_QUEUE_URL", "queue_url")):
        url = environ.get(variable)
        if url:
            try:
                connection.parse(url)
            except ValueError as exc:
                problems.add(("redis", field_name), f"the environment variable {variable}: {exc}")


def _check_cluster(spec: RedisSpec, url: str | None, queue_url: str | None, problems: Problems) -> None:
    """What a Redis Cluster needs beside it, and what it cannot do (docs/deployment.md, Redis Cluster)."""
    if url is None or not connection.is_cluster(url):
        return
    if not queue_url:
        problems.add(("redis", "url"), "a Redis Cluster needs redis.queue_url (or REDIS_QUEUE_URL): RQ's queue "
                     "cannot be on a cluster (its commands span slots); give it a plain or Sentinel Redis")  # fmt: skip
    elif connection.is_cluster(queue_url):
        problems.add(("redis", "queue_url"), "RQ's queue cannot be on a Redis Cluster: use a plain or Sentinel URL")
    if spec.wait_replicas:
        problems.add(("redis", "wait_replicas"), "not available on a Redis Cluster yet: set it to 0, or use Sentinel")


def _tenants(spec: ConfigFile, environ: dict[str, str], problems: Problems) -> dict[str, Tenant]:
    tenants: dict[str, Tenant] = {}
    key_owners: dict[str, str] = {}
    _check_numbers(spec, problems)
    for name, tenant in spec.tenants.items():
        api_keys: dict[str, ApiKey] = {}
        for i, key in enumerate(tenant.keys):
            where = ("tenants", name, "keys", i)
            digest = _key_digest(key, environ, where, problems)
            if digest is not None and key_owners.setdefault(digest, name) != name:
                problems.add(where, f"the same API key as tenant {key_owners[digest]!r}; a key must name one tenant")
            elif digest is not None:
                api_key = _api_key(key, digest, tenant.admin)
                if api_key.id in api_keys:
                    problems.add((*where, "id"), f"key id {api_key.id!r} is used twice in tenant {name!r}")
                api_keys[api_key.id] = api_key
        limits = tenant.rate_limits.given() if tenant.rate_limits else {}
        tenants[name] = Tenant(name, tuple(api_keys.values()), tenant.admin, frozenset(tenant.numbers),
                               frozenset(tenant.proxy_numbers), limits)  # fmt: skip
    return tenants


def _check_numbers(spec: ConfigFile, problems: Problems) -> None:
    """A number has one use for one tenant: a reply number (`numbers`) routes texts to that tenant's
    notifications, a proxy number routes them to a masked session. Listed twice, a text to it would
    reach the wrong place, or the wrong tenant."""
    uses: dict[str, tuple[str, str]] = {}  # number -> (tenant, "numbers" | "proxy_numbers"), as first listed
    senders = spec.providers.sender_numbers()
    for name, tenant in spec.tenants.items():
        for kind in ("numbers", "proxy_numbers"):
            for i, number in enumerate(getattr(tenant, kind)):
                first = uses.setdefault(number, (name, kind))
                if first != (name, kind):
                    problems.add(("tenants", name, kind, i), _number_used_twice(number, first, kind))
                elif kind == "proxy_numbers" and number in senders:
                    problems.add(("tenants", name, kind, i),
                                 f"{number} is a provider's sender number (providers.sms/whatsapp/voice), not a proxy number")  # fmt: skip


def _number_used_twice(number: str, first: tuple[str, str], kind: str) -> str:
    if first[1] == kind == "numbers":
        return f"{number} already belongs to tenant {first[0]!r}; replies could not be routed"
    return (f"{number} is already in {first[1]} of tenant {first[0]!r}; a number is one tenant's reply number "
            "or in one tenant's masking pool, never both")  # fmt: skip


def _api_key(key: KeySpec, digest: str, operator: bool) -> ApiKey:
    # Without `roles`, a key keeps what keys could do before roles existed: all but admin, and
    # admin as well on an operator tenant (which could always reload the rules).
    roles = frozenset(key.roles) if key.roles is not None else DEFAULT_ROLES | ({Role.ADMIN} if operator else set())
    limits = key.rate_limits.given() if key.rate_limits else {}
    return ApiKey(key.id or f"sha256:{digest[:8]}", digest, roles, key.expires, limits)


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
