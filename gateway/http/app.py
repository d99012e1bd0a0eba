"""The HTTP API (FastAPI). Every /v1 call is authenticated and scoped to the caller's tenant."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

import redis
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from channels.rendering.render import DELIVERY_RECHECK_S, Renderer
from gateway import __version__
from gateway.config import Settings
from gateway.http import masking as masking_routes
from gateway.http import openapi, webhooks
from gateway.http import validation as httperrors
from gateway.http.admin import AdminApi, OpsApi
from gateway.http.auth import Access
from gateway.http.bodylimit import BodyLimit
from gateway.http.errors import ApiError as ApiError  # re-exported: routes elsewhere raise it
from gateway.http.escalation_calls import EscalationCalls
from gateway.http.jsonbody import JsonBodies
from gateway.http.notifications import NotificationsApi
from gateway.http.ratelimit import RateLimiter
from gateway.http.templates import TemplatesApi
from gateway.http.webhooks import SlackUpdater
from gateway.rulesets import RulesHolder
from gateway.state.audit import AuditLog
from gateway.state.connection import NotReplicated
from gateway.state.store import Store
from masking.telephony import Telephony

log = logging.getLogger("parley.api")
STORE_RETRY_AFTER_S = 1  # Redis restarts in about a second; a longer outage answers 503 again
Clock = Callable[[], datetime]


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

    # The hot endpoint's router first: routes are matched in order.
    app.include_router(NotificationsApi(store, holder, now).router())
    app.include_router(TemplatesApi(Renderer(settings.templates_dir)).router())
    masking = masking_routes.install(app, settings, store, now, telephony, audit_log)
    webhooks.install_forbidden(app)
    hooks = webhooks.ProviderWebhooks(settings, store, now, masking.relay, slack_acknowledged)
    app.state.webhooks = hooks
    app.include_router(hooks.router())
    renderer = Renderer(settings.templates_dir, DELIVERY_RECHECK_S)
    app.include_router(EscalationCalls(store, renderer, masking.relay.hooks, now).router())
    app.include_router(AdminApi(store, holder, access, audit_log).router())
    app.include_router(OpsApi(store, holder).router())

    return app


def _body_limits(settings: Settings) -> Callable[[str], int]:
    """The largest body a path accepts: provider webhooks are small, API bodies are bounded by config."""
    api, hooks = settings.server.max_body_bytes, settings.server.max_webhook_bytes
    return lambda path: hooks if path.startswith("/webhooks/") else api


def _errors(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> JSONResponse:
        headers = exc.extra.pop("headers", None)
        return JSONResponse(
            {"error": exc.error, "message": exc.message, **exc.extra}, status_code=exc.status, headers=headers
        )

    @app.exception_handler(redis.ConnectionError)  # BusyLoadingError (Redis loading its data) is one too
    @app.exception_handler(redis.TimeoutError)
    @app.exception_handler(ConnectionError)  # the auto-pipeline's socket, before redis-py wraps it
    async def store_unavailable(request: Request, exc: Exception) -> JSONResponse:
        # Nothing was accepted: a client that retries after Retry-After loses nothing (an intent with
        # an Idempotency-Key is created once however often it is sent).
        log.warning("%s %s: Redis unavailable (%s); answered 503", request.method, request.url.path, exc)
        return JSONResponse(
            {"error": "store_unavailable", "message": "the state store (Redis) is unavailable; retry shortly"},
            status_code=503,
            headers={"Retry-After": str(STORE_RETRY_AFTER_S)},
        )

    @app.exception_handler(NotReplicated)
    async def not_replicated(request: Request, exc: NotReplicated) -> JSONResponse:
        # Unlike store_unavailable, the write was made (on the master): a failover now could still lose it.
        # Retrying is safe (a retried stop answers 'inactive'), and waits for the replicas again.
        log.warning("%s %s: %s (redis.wait_replicas); answered 503", request.method, request.url.path, exc)
        return JSONResponse(
            {"error": "not_replicated",
             "message": "recorded, but fewer Redis replicas than redis.wait_replicas confirmed it in time; retry"},
            status_code=503,
            headers={"Retry-After": str(STORE_RETRY_AFTER_S)},
        )  # fmt: skip

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
