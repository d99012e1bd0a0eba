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

from fastapi import Depends, FastAPI, Header, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from channels.render import DELIVERY_RECHECK_S, Renderer
from gateway import keys, metrics, webhooks
from gateway.api_templates import templates_router
from gateway.config import Settings, Tenant
from gateway.records import Stored, to_ms
from gateway.rulesets import RulesHolder
from gateway.store import Store
from gateway.views import notification_view
from masking.telephony import Telephony
from rules.intent import Intent
from rules.model import Policy, StopEvent
from rules.problems import field_problem
from rules.yamlpos import format_path

log = logging.getLogger("parley.api")
Clock = Callable[[], datetime]


class ApiError(Exception):
    def __init__(self, status: int, error: str, message: str, **extra: Any) -> None:
        self.status, self.error, self.message, self.extra = status, error, message, extra


class EventIn(BaseModel):
    type: StopEvent


class CorrelatedEventIn(BaseModel):
    type: StopEvent
    correlation_key: str


async def current_tenant(request: Request, authorization: Annotated[str | None, Header()] = None) -> Tenant:
    return tenant_for(request.app.state.settings, authorization)


def tenant_for(settings: Settings, authorization: str | None) -> Tenant:
    scheme, _, key = (authorization or "").partition(" ")
    found = settings.tenant_for_key(key.strip()) if scheme.lower() == "bearer" and key.strip() else None
    if found is None:
        raise ApiError(
            401, "unauthorized", "send Authorization: Bearer <API key>", headers={"WWW-Authenticate": "Bearer"}
        )
    return found


Auth = Annotated[Tenant, Depends(current_tenant)]
IDEMPOTENCY_KEY_MAX = 200

# The hot endpoint reads its two headers itself: FastAPI's parameter machinery was ~15 % of the API's
# CPU per intent (docs/benchmarks.md). The schema still documents them.
CREATE_HEADERS: dict[str, Any] = {
    "parameters": [
        {"name": "authorization", "in": "header", "required": True, "schema": {"type": "string"},
         "description": "Bearer <API key>"},
        {"name": "idempotency-key", "in": "header", "required": False,
         "schema": {"type": "string", "maxLength": IDEMPOTENCY_KEY_MAX}},
    ]
}  # fmt: skip


def create_app(
    settings: Settings,
    store: Store,
    holder: RulesHolder,
    clock: Clock | None = None,
    telephony: Telephony | None = None,
) -> FastAPI:
    now: Clock = clock or (lambda: datetime.now(UTC))

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if holder.current is None:
            holder.reload()
        for step in app.state.startup:
            await step()
        tasks = [asyncio.create_task(_follow_reloads(store, holder))]
        tasks += [asyncio.create_task(job()) for job in app.state.background]
        yield
        for task in tasks:
            task.cancel()
        await store.close()

    app = FastAPI(title="Parley", version="0.1.0", lifespan=lifespan, description="Notifications that get answered.")
    app.state.store, app.state.holder, app.state.settings, app.state.clock = store, holder, settings, now
    app.state.renderer, app.state.startup, app.state.background = (
        Renderer(settings.templates_dir, DELIVERY_RECHECK_S),
        [],
        [],
    )
    _errors(app)

    @app.post("/v1/notifications", status_code=202, openapi_extra=CREATE_HEADERS)
    async def create(request: Request) -> JSONResponse:
        who = tenant_for(settings, request.headers.get("authorization"))
        idempotency_key = _idempotency_key(request)
        intent = await _read_intent(request, settings.server.max_body_bytes)
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

    async def owned(who: Tenant, nid: str) -> Stored:
        stored = await store.load_for(who.name, nid)
        if stored is None:
            raise ApiError(404, "not_found", f"no notification {nid!r}")
        return stored

    # The hot endpoint is registered before the included routers: routes are matched in order.
    app.include_router(templates_router(settings))
    webhooks.install(app)
    # Imported here: masking's routes use this module's Auth and ApiError.
    from masking import wiring as masking_wiring

    masking_wiring.install(app, settings, store, now, telephony)

    @app.get("/v1/notifications/{nid}")
    async def show(nid: str, who: Auth) -> dict[str, Any]:
        stored = await owned(who, nid)
        return notification_view(stored, await store.log(nid))

    @app.post("/v1/notifications/{nid}/events")
    async def event(nid: str, body: EventIn, who: Auth) -> dict[str, Any]:
        stored = await owned(who, nid)
        result = await store.stop(who.name, stored, body.type, now(), source="api")
        after = await owned(who, nid)
        return {"id": nid, "status": after.status.value, "result": result}

    @app.post("/v1/events")
    async def correlated(body: CorrelatedEventIn, who: Auth) -> dict[str, Any]:
        ids = await store.correlated(who.name, body.correlation_key)
        results = await store.stop_all(who.name, ids, body.type, now(), source="api")
        return {"correlation_key": body.correlation_key, **{k: v for k, v in results.items() if k != "missing"}}

    @app.get("/v1/outbox")
    async def outbox(who: Auth, limit: int = 100) -> dict[str, Any]:
        return {"messages": await store.outbox(who.name, max(1, min(limit, keys.OUTBOX_KEEP)))}

    @app.post("/v1/admin/rules/reload")
    async def reload(who: Auth) -> dict[str, Any]:
        if not who.admin:
            raise ApiError(403, "forbidden", "reloading rules needs an admin tenant key")
        problems = holder.reload()
        if problems:
            raise ApiError(422, "rules_invalid", "the rules file has problems; the rules in force are kept",
                           problems=[p.as_dict() for p in problems], messages=[str(p) for p in problems])  # fmt: skip
        holder.generation = await store.bump_rules_generation()
        assert holder.current is not None
        return {"policies": holder.current.versions, "generation": holder.generation}

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        checks = {"redis": await store.ping(), "rules": holder.current is not None}
        return JSONResponse({"ready": all(checks.values()), **checks}, status_code=200 if all(checks.values()) else 503)

    @app.get("/metrics")
    async def prometheus() -> Response:
        registry = CollectorRegistry()
        queue = int(await store.r.llen(f"rq:queue:{keys.QUEUE}"))
        registry.register(metrics.Snapshot(await store.counters(), await store.due_depth(), queue))
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return app


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


async def _read_intent(request: Request, limit: int) -> Intent:
    body = await request.body()
    if len(body) > limit:
        msg = f"body is {len(body)} bytes; the limit is {limit}"
        raise ApiError(422, "validation_failed", msg, detail=[{"path": "(body)", "message": msg}])
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

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        detail = [field_problem({**e, "loc": tuple(x for x in e["loc"] if x != "body")}) for e in exc.errors()]
        message = "; ".join(f"{d['path']}: {d['message']}" for d in detail)
        return JSONResponse({"error": "validation_failed", "message": message, "detail": detail}, status_code=422)

    # Starlette's class, not FastAPI's subclass: unknown routes and methods raise the former.
    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        error = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return JSONResponse({"error": error, "message": str(exc.detail)}, status_code=exc.status_code)


async def _follow_reloads(store: Store, holder: RulesHolder, every: float = 0.5) -> None:
    """Keep every API process on the same rules: reload when SIGHUP asked for it (and tell the
    others), or when another process reloaded (it bumped the generation)."""
    while True:
        await asyncio.sleep(every)
        with contextlib.suppress(Exception):
            if holder.hangup:
                holder.hangup = False
                if not holder.reload():
                    holder.generation = await store.bump_rules_generation()
                continue
            generation = await store.rules_generation()
            if generation > holder.generation:
                holder.generation = generation
                holder.reload()
