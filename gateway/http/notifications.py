"""/v1/notifications, /v1/events and /v1/outbox: what a marketplace backend sends and reads."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, ValidationError

from gateway.access import Principal, Role
from gateway.http.auth import Events, Reader, authorize
from gateway.http.errors import ApiError
from gateway.http.openapi import error_responses
from gateway.http.ratelimit import Scope
from gateway.http.views import notification_view
from gateway.rulesets import RulesHolder
from gateway.state import keys
from gateway.state.records import Stored
from gateway.state.store import Store
from rules.durations import to_ms
from rules.intent import Intent, Text
from rules.model import Policy, StopEvent
from rules.problems import field_problem
from rules.yamlpos import format_path


class EventIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: StopEvent


class CorrelatedEventIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"type": "responded", "correlation_key": "inquiry-1001"}]}
    )
    type: StopEvent
    correlation_key: Text  # as long as an intent's may be


NotificationId = Annotated[str, Path(max_length=64)]  # ours are 34 characters: n_, the shard, -, 29 hex digits


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


@dataclass(frozen=True)
class NotificationsApi:
    store: Store
    holder: RulesHolder
    clock: Callable[[], datetime]

    def router(self) -> APIRouter:
        router = APIRouter()
        router.add_api_route(
            "/v1/notifications",
            self.create,
            methods=["POST"],
            status_code=202,
            openapi_extra=CREATE_HEADERS,
            responses=CREATED,
        )
        router.add_api_route("/v1/notifications/{nid}", self.show, methods=["GET"], responses=error_responses(404))
        router.add_api_route(
            "/v1/notifications/{nid}/events", self.event, methods=["POST"], responses=error_responses(404)
        )
        router.add_api_route("/v1/events", self.correlated, methods=["POST"])
        router.add_api_route("/v1/outbox", self.outbox, methods=["GET"])
        return router

    async def create(self, request: Request) -> JSONResponse:
        who = await authorize(request, request.headers.get("authorization"), Role.INGEST, Scope.INGEST)
        idempotency_key = _idempotency_key(request)
        intent = await _read_intent(request)
        loaded = self.holder.current
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
        nid = self.store.new_id()
        body_hash = ""
        if idempotency_key:  # canonical JSON: the same intent with keys in another order is the same request
            canonical = json.dumps(intent.match_fields(), sort_keys=True, separators=(",", ":"))
            body_hash = hashlib.sha256(canonical.encode()).hexdigest()
        at = self.clock()
        fields = notification_fields(who.name, policy, loaded.versions[policy.name], intent, at)
        created = await self.store.create(
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
            first = await self.store.load_for(who.name, created.id)
            if first is not None:
                body.update(policy=first.policy, version=first.version)
            return JSONResponse(body, status_code=200)
        return JSONResponse(body, status_code=202)  # counted (metrics.INTENTS) by store.create

    async def _owned(self, who: Principal, nid: str) -> Stored:
        stored = await self.store.load_for(who.name, nid)
        if stored is None:
            raise ApiError(404, "not_found", f"no notification {nid!r}")
        return stored

    async def show(self, nid: NotificationId, who: Reader) -> dict[str, Any]:
        stored = await self._owned(who, nid)
        return notification_view(stored, await self.store.log(nid))

    async def event(self, nid: NotificationId, body: EventIn, who: Events) -> dict[str, Any]:
        stored = await self._owned(who, nid)
        result = await self.store.stop(who.name, stored, body.type, self.clock(), source="api")
        after = await self._owned(who, nid)
        return {"id": nid, "status": after.status.value, "result": result}

    async def correlated(self, body: CorrelatedEventIn, who: Events) -> dict[str, Any]:
        ids = await self.store.correlated(who.name, body.correlation_key)
        results = await self.store.stop_all(who.name, ids, body.type, self.clock(), source="api")
        return {"correlation_key": body.correlation_key, **{k: v for k, v in results.items() if k != "missing"}}

    async def outbox(
        self, who: Reader, limit: Annotated[int, Query(ge=1, le=keys.OUTBOX_KEEP)] = 100
    ) -> dict[str, Any]:
        return {"messages": await self.store.outbox(who.name, limit)}


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
