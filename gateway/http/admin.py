"""/v1/admin/rules/reload and /v1/audit for operators; /healthz, /readyz and /metrics for the platform."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from gateway import metrics
from gateway.http.auth import Access, Admin, client_address
from gateway.http.errors import ApiError
from gateway.http.openapi import error_responses
from gateway.rulesets import RulesHolder
from gateway.state.audit import Action, AuditLog
from gateway.state.store import Store


@dataclass(frozen=True)
class AdminApi:
    store: Store
    holder: RulesHolder
    access: Access
    audit_log: AuditLog

    def router(self) -> APIRouter:
        router = APIRouter()
        router.add_api_route("/v1/admin/rules/reload", self.reload, methods=["POST"], responses=error_responses(422))
        router.add_api_route("/v1/audit", self.audit, methods=["GET"])
        return router

    async def reload(self, request: Request, who: Admin) -> dict[str, Any]:
        if not who.admin:
            raise ApiError(403, "forbidden", "reloading rules needs an admin key of an operator tenant (admin: true)")
        problems = await self.holder.reload_async()  # off the event loop, within its time limit
        problems = [*problems, *await self.access.reload_keys()]  # keys rotate with the same reload
        outcome = "refused" if problems else "ok"
        await self.audit_log.record(who, Action.RULES_RELOAD, "rules", client_address(request), outcome)
        if problems:
            raise ApiError(422, "rules_invalid", "the rules file has problems; the rules in force are kept",
                           problems=[p.as_dict() for p in problems], messages=[str(p) for p in problems])  # fmt: skip
        self.holder.generation = await self.store.bump_rules_generation()
        assert self.holder.current is not None
        return {"policies": self.holder.current.versions, "generation": self.holder.generation}

    async def audit(
        self, who: Admin, limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        before: Annotated[str | None, Query(pattern=r"^[0-9]{1,20}-[0-9]{1,20}$")] = None,
    ) -> dict[str, Any]:  # fmt: skip
        """The tenant's audit log, newest first; `next` is the `before` of the following page."""
        entries, after = await self.audit_log.read(who.name, before, limit)
        return {"entries": entries, "next": after}


@dataclass(frozen=True)
class OpsApi:
    store: Store
    holder: RulesHolder

    def router(self) -> APIRouter:
        router = APIRouter()
        router.add_api_route("/healthz", self.healthz, methods=["GET"])
        router.add_api_route(
            "/readyz",
            self.readyz,
            methods=["GET"],
            responses={503: {"description": "not ready: the body shows which check failed"}},
        )
        router.add_api_route("/metrics", self.prometheus, methods=["GET"], response_class=PlainTextResponse)
        return router

    async def healthz(self) -> dict[str, str]:
        return {"status": "ok"}

    async def readyz(self) -> JSONResponse:
        checks = {"redis": await self.store.ping(), "rules": self.holder.current is not None}
        return JSONResponse({"ready": all(checks.values()), **checks}, status_code=200 if all(checks.values()) else 503)

    async def prometheus(self) -> Response:
        registry = CollectorRegistry()
        queue = await self.store.queue_length()
        registry.register(metrics.Snapshot(await self.store.counters(), await self.store.due_depth(), queue))
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
