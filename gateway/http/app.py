"""The HTTP API (FastAPI). Every /v1 call is authenticated and scoped to the caller's tenant."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import FastAPI, Path, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from pydantic import BaseModel, ConfigDict, ValidationError

from channels.rendering.render import DELIVERY_RECHECK_S, Renderer
from gateway import __version__, metrics
from gateway.access import Principal, Role
from gateway.config import Settings
from gateway.http import masking as masking_routes
from gateway.http import openapi, webhooks
from gateway.http import validation as httperrors
from gateway.http.auth import Access, Admin, Events, Reader, authorize, client_address
from gateway.http.bodylimit import BodyLimit
from gateway.http.errors import ApiError as ApiError  # re-exported: routes elsewhere raise it
from gateway.http.escalation_calls import EscalationCalls
from gateway.http.jsonbody import JsonBodies
from gateway.http.openapi import error_responses
from gateway.http.ratelimit import RateLimiter, Scope
from gateway.http.templates import templates_router
from gateway.http.views import notification_view
from gateway.http.webhooks import SlackUpdater
from gateway.rulesets import RulesHolder
from gateway.state import keys
from gateway.state.audit import Action, AuditLog
from gateway.state.records import Stored
from gateway.state.store import Store
from masking.telephony import Telephony
from rules.durations import to_ms
from rules.intent import Intent, Text
from rules.model import Policy, StopEvent
from rules.problems import field_problem
from rules.yamlpos import format_path

log = logging.getLogger("parley.api")
Clock = Callable[[], datetime]


class EventIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: StopEvent


class CorrelatedEventIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"type": "responded", "correlation_key": "inquiry-1001"}]}
    )
    type: StopEvent
    correlation_key: Text  # as long as an intent's may be


NotificationId = Annotated[str, Path(max_length=64)]  # ours are 34 characters: n_ and 32 hex digits


IDEMPOTENCY_KEY_MAX = 200

# The hot endpoint reads its two headers itself: FastAPI's parameter machinery was ~15 % of the API's
# CPU per intent (docs/benchmarks.md). The schema still documents them.
CREATE_HEADERS: dict[str, Any] = {
    "parameters": [
        {"name": "authorization", "in": "header", "required": True, "schema": {"type": "string"},
         "description": "Bearer <API key>"},
        {"name": "idempotency-key", "in": "header", "required": False,
         "schema": {"type": "string", "maxLength": IDEMPOTENCY_KEY_MAX}},
    ],
    # ... and its body, which it validates itself: gateway.http.openapi puts the Intent schema in the document.
    "requestBody": {"required": True, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Intent"}}}},
}  # fmt: skip
CREATED: dict[int | str, dict[str, Any]] = {
    200: {"description": "an Idempotency-Key seen before with the same body: the first response, again"},
    **error_responses(409, 503),
}


def create_app(
    settings: Settings,
    store: Store,
    holder: RulesHolder,
    clock: Clock | None = None,
    telephony: Telephony | None = None,
    slack_acknowledged: SlackUpdater | None = None,
) -> FastAPI:
    """The app, its routes built with what they use. Two things stay on app.state: `access` and
    `clock`, which the module-level auth dependencies (gateway/http/auth.py) read; and `webhooks`, so
    a test can watch the Slack rewrite."""
    now: Clock = clock or (lambda: datetime.now(UTC))

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if holder.current is None:
            holder.reload()
        for step in masking.startup:
            await step()
        tasks = [asyncio.create_task(_follow_reloads(store, holder, access))]
        tasks += [asyncio.create_task(job()) for job in masking.background]
        yield
        for task in tasks:
            task.cancel()
        await store.close()

    shown = settings.server.docs  # server.docs: false hides the interactive docs and the schema
    app = FastAPI(title="Parley", version=__version__, lifespan=lifespan, description="Notifications that get answered.",
                  docs_url="/docs" if shown else None, redoc_url="/redoc" if shown else None,
                  openapi_url="/openapi.json" if shown else None)  # fmt: skip
    app.add_middleware(JsonBodies)  # added first, so BodyLimit (added next) wraps it and caps what it reads
    app.add_middleware(BodyLimit, limit_for=_body_limits(settings))
    openapi.install(app)
    limiter = RateLimiter(store, settings.server.rate_limits.given(), settings.server.auth_failures)
    access = Access(settings, settings.keyring, limiter)
    audit_log = AuditLog(store, settings.audit.retention, settings.audit.max_entries, now)
    app.state.access, app.state.clock = access, now
    _errors(app)

    @app.post("/v1/notifications", status_code=202, openapi_extra=CREATE_HEADERS, responses=CREATED)
    async def create(request: Request) -> JSONResponse:
        who = await authorize(request, request.headers.get("authorization"), Role.INGEST, Scope.INGEST)
        idempotency_key = _idempotency_key(request)
        intent = await _read_intent(request)
        loaded = holder.current
        if loaded is None:
            raise ApiError(503, "rules_unavailable", "no valid rules are loaded")
        policy = loaded.rules.select(intent)
        if policy is None:
            where, msg = (
                (("policy",), f"unknown policy {intent.policy!r}")
                if intent.policy
                else (("event",), f"no policy matches event {intent.event!r}")
            )
            raise ApiError(422, "validation_failed", msg, detail=[{"path": format_path(where), "message": msg}])
        nid = "n_" + uuid.uuid4().hex
        body_hash = ""
        if idempotency_key:  # canonical JSON: the same intent with keys in another order is the same request
            canonical = json.dumps(intent.match_fields(), sort_keys=True, separators=(",", ":"))
            body_hash = hashlib.sha256(canonical.encode()).hexdigest()
        at = now()
        fields = notification_fields(who.name, policy, loaded.versions[policy.name], intent, at)
        created = await store.create(
            nid=nid, tenant=who.name, fields=fields, policy=policy, digest=loaded.versions[policy.name], due=at,
            idempotency_key=idempotency_key, body_hash=body_hash, correlation_key=intent.correlation_key,
            phone=intent.recipient.phone,
        )  # fmt: skip
        if created.outcome == "conflict":
            raise ApiError(
                409, "idempotency_conflict", "this Idempotency-Key was used with a different body", id=created.id
            )
        body = {"id": created.id, "status": "active", "policy": policy.name, "version": loaded.versions[policy.name]}
        if created.outcome == "exists":
            first = await store.load_for(who.name, created.id)
            if first is not None:
                body.update(policy=first.policy, version=first.version)
            return JSONResponse(body, status_code=200)
        return JSONResponse(body, status_code=202)  # counted (metrics.INTENTS) by store.create

    async def owned(who: Principal, nid: str) -> Stored:
        stored = await store.load_for(who.name, nid)
        if stored is None:
            raise ApiError(404, "not_found", f"no notification {nid!r}")
        return stored

    # The hot endpoint is registered before the included routers: routes are matched in order.
    app.include_router(templates_router(settings))
    masking = masking_routes.install(app, settings, store, now, telephony, audit_log)
    webhooks.install_forbidden(app)
    hooks = webhooks.ProviderWebhooks(settings, store, now, masking.relay, slack_acknowledged)
    app.state.webhooks = hooks
    app.include_router(hooks.router())
    renderer = Renderer(settings.templates_dir, DELIVERY_RECHECK_S)
    app.include_router(EscalationCalls(store, renderer, masking.relay.hooks, now).router())

    @app.get("/v1/notifications/{nid}", responses=error_responses(404))
    async def show(nid: NotificationId, who: Reader) -> dict[str, Any]:
        stored = await owned(who, nid)
        return notification_view(stored, await store.log(nid))

    @app.post("/v1/notifications/{nid}/events", responses=error_responses(404))
    async def event(nid: NotificationId, body: EventIn, who: Events) -> dict[str, Any]:
        stored = await owned(who, nid)
        result = await store.stop(who.name, stored, body.type, now(), source="api")
        after = await owned(who, nid)
        return {"id": nid, "status": after.status.value, "result": result}

    @app.post("/v1/events")
    async def correlated(body: CorrelatedEventIn, who: Events) -> dict[str, Any]:
        ids = await store.correlated(who.name, body.correlation_key)
        results = await store.stop_all(who.name, ids, body.type, now(), source="api")
        return {"correlation_key": body.correlation_key, **{k: v for k, v in results.items() if k != "missing"}}

    @app.get("/v1/outbox")
    async def outbox(who: Reader, limit: Annotated[int, Query(ge=1, le=keys.OUTBOX_KEEP)] = 100) -> dict[str, Any]:
        return {"messages": await store.outbox(who.name, limit)}

    @app.post("/v1/admin/rules/reload", responses=error_responses(422))
    async def reload(request: Request, who: Admin) -> dict[str, Any]:
        if not who.admin:
            raise ApiError(403, "forbidden", "reloading rules needs an admin key of an operator tenant (admin: true)")
        problems = await holder.reload_async()  # off the event loop, within its time limit
        problems = [*problems, *await access.reload_keys()]  # keys rotate with the same reload
        outcome = "refused" if problems else "ok"
        await audit_log.record(who, Action.RULES_RELOAD, "rules", client_address(request), outcome)
        if problems:
            raise ApiError(422, "rules_invalid", "the rules file has problems; the rules in force are kept",
                           problems=[p.as_dict() for p in problems], messages=[str(p) for p in problems])  # fmt: skip
        holder.generation = await store.bump_rules_generation()
        assert holder.current is not None
        return {"policies": holder.current.versions, "generation": holder.generation}

    @app.get("/v1/audit")
    async def audit(
        who: Admin, limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        before: Annotated[str | None, Query(pattern=r"^[0-9]{1,20}-[0-9]{1,20}$")] = None,
    ) -> dict[str, Any]:  # fmt: skip
        """The tenant's audit log, newest first; `next` is the `before` of the following page."""
        entries, after = await audit_log.read(who.name, before, limit)
        return {"entries": entries, "next": after}

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", responses={503: {"description": "not ready: the body shows which check failed"}})
    async def readyz() -> JSONResponse:
        checks = {"redis": await store.ping(), "rules": holder.current is not None}
        return JSONResponse({"ready": all(checks.values()), **checks}, status_code=200 if all(checks.values()) else 503)

    @app.get("/metrics", response_class=PlainTextResponse)
    async def prometheus() -> Response:
        registry = CollectorRegistry()
        queue = await store.queue_length()
        registry.register(metrics.Snapshot(await store.counters(), await store.due_depth(), queue))
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return app


def _body_limits(settings: Settings) -> Callable[[str], int]:
    """The largest body a path accepts: provider webhooks are small, API bodies are bounded by config."""
    api, hooks = settings.server.max_body_bytes, settings.server.max_webhook_bytes
    return lambda path: hooks if path.startswith("/webhooks/") else api


def notification_fields(tenant: str, policy: Policy, version: str, intent: Intent, at: datetime) -> dict[str, str]:
    """The hash a new notification is stored as (the benchmark seeds notifications with it too)."""
    return {
        "tenant": tenant, "status": "active", "token": "0", "policy": policy.name, "version": version,
        "intent": intent.model_dump_json(exclude_defaults=True), "created_ms": str(to_ms(at)),
        "corr": intent.correlation_key or "", "events": "0",
        "stops": "," + ",".join(e.value for e in {*policy.until, StopEvent.CANCELLED}) + ",",
    }  # fmt: skip


def _idempotency_key(request: Request) -> str | None:
    key = request.headers.get("idempotency-key")
    if key is not None and len(key) > IDEMPOTENCY_KEY_MAX:
        problem = {
            "path": "header.idempotency-key",
            "message": f"String should have at most {IDEMPOTENCY_KEY_MAX} characters",
        }
        raise ApiError(422, "validation_failed", f"{problem['path']}: {problem['message']}", detail=[problem])
    return key


async def _read_intent(request: Request) -> Intent:
    body = await request.body()  # at most server.max_body_bytes (gateway.http.bodylimit)
    try:
        return Intent.model_validate_json(body)
    except ValidationError as exc:
        detail = [field_problem(e) for e in exc.errors()]
        raise ApiError(
            422, "validation_failed", "; ".join(f"{d['path']}: {d['message']}" for d in detail), detail=detail
        ) from None


def _errors(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> JSONResponse:
        headers = exc.extra.pop("headers", None)
        return JSONResponse(
            {"error": exc.error, "message": exc.message, **exc.extra}, status_code=exc.status, headers=headers
        )

    httperrors.install(app)


async def _follow_reloads(store: Store, holder: RulesHolder, access: Access, every: float = 0.5) -> None:
    """Keep every API process on the same rules and keys: reload when SIGHUP asked for it (and tell
    the others), or when another process reloaded (it bumped the generation)."""
    while True:
        await asyncio.sleep(every)
        with contextlib.suppress(Exception):
            if holder.hangup:
                holder.hangup = False
                rules_problems = await holder.reload_async()
                if not rules_problems and not await access.reload_keys():
                    holder.generation = await store.bump_rules_generation()
                continue
            generation = await store.rules_generation()
            if generation > holder.generation:
                holder.generation = generation
                await holder.reload_async()
                await access.reload_keys()
