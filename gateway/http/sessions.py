"""/v1/masking/numbers, /v1/masked-sessions and /v1/calls: what a tenant and its agents see.

A participant appears only by id and proxy number here; real numbers stay in Redis.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Path, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from gateway.access import Principal
from gateway.config import Settings
from gateway.http.auth import Caller, Masker, client_address
from gateway.http.errors import ApiError
from gateway.http.openapi import error_responses
from gateway.state.audit import Action, AuditLog
from gateway.state.records import iso
from masking.assign import Exhausted
from masking.model import Session, SessionIn, Text
from masking.store import MaskingStore, Opened
from masking.telephony import Telephony
from rules.durations import parse_duration
from rules.intent import Phone

log = logging.getLogger("parley.masking")
SessionId = Annotated[str, Path(max_length=64)]  # ours are 35 characters: ms_ and 32 hex digits
PoolNumber = Annotated[str, Path(max_length=32)]  # as long as a Phone may be
OPENED: dict[int | str, dict[str, Any]] = {
    200: {"description": "these participants already have an open session with this correlation_key: it"},
    **error_responses(409),
}


class NumbersIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    numbers: Annotated[list[Phone], Field(min_length=1, max_length=1000)]


class Agent(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: Text
    phone: Phone


class CallIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    agent: Agent
    session_id: Text
    participant_id: Text


def session_view(session: Session, now: datetime) -> dict[str, Any]:
    status = "expired" if session.status.value == "open" and not session.is_open(now) else session.status.value
    return {
        "id": session.id, "status": status, "correlation_key": session.correlation_key, "record": session.record,
        "created_at": iso(session.created_at), "expires_at": iso(session.expires_at),
        "participants": [{"id": p.id, "proxy": p.proxy} for p in session.participants],
    }  # fmt: skip


@dataclass(frozen=True)
class SessionsApi:
    """The routes, built with what they use (gateway/http/masking.py): nothing is looked up per request."""

    masking: MaskingStore
    settings: Settings
    telephony: Telephony
    audit: AuditLog
    clock: Callable[[], datetime]

    def router(self) -> APIRouter:
        router = APIRouter(tags=["masking"])
        router.add_api_route("/v1/masking/numbers", self.list_numbers, methods=["GET"])
        router.add_api_route("/v1/masking/numbers", self.add_numbers, methods=["POST"], responses=error_responses(409))
        router.add_api_route(
            "/v1/masking/numbers/{number}",
            self.remove_number,
            methods=["DELETE"],
            status_code=204,
            responses=error_responses(404),
        )
        router.add_api_route(
            "/v1/masked-sessions", self.open_session, methods=["POST"], status_code=201, responses=OPENED
        )
        router.add_api_route(
            "/v1/masked-sessions/{sid}", self.show_session, methods=["GET"], responses=error_responses(404)
        )
        router.add_api_route(
            "/v1/masked-sessions/{sid}", self.close_session, methods=["DELETE"], responses=error_responses(404)
        )
        router.add_api_route(
            "/v1/calls", self.click_to_call, methods=["POST"], status_code=201, responses=error_responses(404, 409, 502)
        )
        return router

    async def list_numbers(self, who: Masker) -> dict[str, Any]:
        pool = await self.masking.pool(who.name)
        return {"numbers": [{"number": n, "country": c} for n, c in sorted(pool.items())]}

    async def add_numbers(self, request: Request, body: NumbersIn, who: Masker) -> dict[str, Any]:
        """Add numbers to the pool, all or none. A number serves one tenant for one use: whoever holds a
        proxy number receives the texts sent to it, so a number held elsewhere is refused (not saying where)."""
        reserved = self.settings.not_for_pool(who.name)
        taken = await self.masking.add_numbers(who.name, body.numbers, reserved)
        await self._audit(request, who, Action.NUMBERS_ADD, ",".join(body.numbers), "refused" if taken else "ok")
        if taken:
            raise ApiError(409, "number_taken", "these numbers are in use elsewhere (another pool, a tenant's reply "
                           "number or a provider's sender number); none was added", numbers=taken)  # fmt: skip
        return await self.list_numbers(who)

    async def remove_number(self, request: Request, number: PoolNumber, who: Masker) -> Response:
        if not await self.masking.remove_number(who.name, number):
            raise ApiError(404, "not_found", f"{number} is not in this tenant's pool")
        await self._audit(request, who, Action.NUMBERS_REMOVE, number)
        return Response(status_code=204)

    async def open_session(self, request: Request, body: SessionIn, who: Masker) -> JSONResponse:
        a, b = body.participants
        if a.phone == b.phone or a.id == b.id:
            raise ApiError(422, "validation_failed", "the two participants must differ",
                           detail=[{"path": "participants[1]", "message": "same id or phone as participants[0]"}])  # fmt: skip
        ttl = parse_duration(body.ttl)  # valid and at most 90 days: masking.model.Ttl
        now = self.clock()
        opened = await self.masking.open(who.name, "ms_" + uuid.uuid4().hex, body.participants, ttl, now,
                                              body.correlation_key, body.record)  # fmt: skip
        if isinstance(opened, Exhausted):
            raise ApiError(409, "pool_exhausted", f"no proxy number is free for these participants; the pool needs at least {opened.needed} numbers",
                           needed=opened.needed, available=opened.available)  # fmt: skip
        assert isinstance(opened, Opened)
        if opened.created:
            await self._audit(request, who, Action.SESSION_OPEN, opened.session.id, record=opened.session.record)
        return JSONResponse(session_view(opened.session, now), status_code=201 if opened.created else 200)

    async def _owned(self, who: Principal, sid: str) -> Session:
        session = await self.masking.session_for(who.name, sid)
        if session is None:
            raise ApiError(404, "not_found", f"no masked session {sid!r}")
        return session

    async def show_session(self, request: Request, sid: SessionId, who: Masker) -> dict[str, Any]:
        view = await self._full_view(await self._owned(who, sid))
        await self._audit(request, who, Action.SESSION_READ, sid)  # its calls and texts, recording links included
        return view

    async def close_session(self, request: Request, sid: SessionId, who: Masker) -> dict[str, Any]:
        await self._owned(who, sid)
        await self.masking.close(sid)
        await self._audit(request, who, Action.SESSION_CLOSE, sid)
        return await self._full_view(await self._owned(who, sid))

    async def _full_view(self, session: Session) -> dict[str, Any]:
        view = session_view(session, self.clock())
        view["interactions"] = [i.model_dump(mode="json") for i in await self.masking.interactions(session.id)]
        return view

    async def _audit(self, request: Request, who: Principal, action: Action, target: str, outcome: str = "ok",
                     **detail: Any) -> None:  # fmt: skip
        await self.audit.record(who, action, target, client_address(request), outcome, **detail)

    async def click_to_call(self, request: Request, body: CallIn, who: Caller) -> dict[str, Any]:
        """Ring the agent first; when they answer, bridge to the participant. Nobody sees a real number."""
        session = await self._owned(who, body.session_id)
        participant = session.by_id(body.participant_id)
        if participant is None:
            raise ApiError(404, "not_found", f"no participant {body.participant_id!r} in session {session.id}")
        if not session.is_open(self.clock()):
            raise ApiError(409, "session_closed", f"session {session.id} is {session.status.value} or expired")
        base = self.settings.server.public_url or str(request.base_url).rstrip("/")
        # Only an opaque id in the URL: ids in it could be rewritten (an agent id "x&session=...") or cut short.
        call_id = await self.masking.remember_agent_call(who.name, session.id, participant.id, body.agent.id)
        url = f"{base}/webhooks/twilio/voice/agent?{urlencode({'call': call_id})}"
        result = await self.telephony.call(tenant=who.name, from_=participant.proxy, to=body.agent.phone, url=url,
                                      status_callback=f"{base}/webhooks/twilio/status")  # fmt: skip
        if result.provider_id is None:
            raise ApiError(502, "call_failed", f"the call could not be placed: {result.detail}")
        await self._audit(request, who, Action.CALL_PLACE, session.id, participant=participant.id, agent=body.agent.id,
                     call=result.provider_id)  # fmt: skip
        log.info(
            "agent %s calling participant %s of %s via %s", body.agent.id, participant.id, session.id, participant.proxy
        )
        return {"call_id": result.provider_id, "session_id": session.id, "agent": {"id": body.agent.id},
                "participant": {"id": participant.id, "proxy": participant.proxy}}  # fmt: skip
