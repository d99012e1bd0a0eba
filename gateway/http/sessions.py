"""/v1/masking/numbers, /v1/masked-sessions and /v1/calls: what a tenant and its agents see.

A participant appears only by id and proxy number here; real numbers stay in Redis.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Path, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from gateway.access import Principal
from gateway.http.auth import Caller, Masker, client_address
from gateway.http.errors import ApiError
from gateway.http.openapi import error_responses
from gateway.state.audit import Action
from gateway.state.records import iso
from masking.assign import Exhausted
from masking.model import Session, SessionIn, Text
from masking.store import MaskingStore, Opened
from masking.telephony import Telephony
from rules.durations import parse_duration
from rules.intent import Phone

log = logging.getLogger("parley.masking")
router = APIRouter(tags=["masking"])
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


def _masking(request: Request) -> MaskingStore:
    store: MaskingStore = request.app.state.masking
    return store


def session_view(session: Session, now: datetime) -> dict[str, Any]:
    status = "expired" if session.status.value == "open" and not session.is_open(now) else session.status.value
    return {
        "id": session.id, "status": status, "correlation_key": session.correlation_key, "record": session.record,
        "created_at": iso(session.created_at), "expires_at": iso(session.expires_at),
        "participants": [{"id": p.id, "proxy": p.proxy} for p in session.participants],
    }  # fmt: skip


@router.get("/v1/masking/numbers")
async def list_numbers(request: Request, who: Masker) -> dict[str, Any]:
    pool = await _masking(request).pool(who.name)
    return {"numbers": [{"number": n, "country": c} for n, c in sorted(pool.items())]}


@router.post("/v1/masking/numbers", responses=error_responses(409))
async def add_numbers(request: Request, body: NumbersIn, who: Masker) -> dict[str, Any]:
    """Add numbers to the pool, all or none. A number serves one tenant for one use: whoever holds a
    proxy number receives the texts sent to it, so a number held elsewhere is refused (not saying where)."""
    reserved = request.app.state.settings.not_for_pool(who.name)
    taken = await _masking(request).add_numbers(who.name, body.numbers, reserved)
    await _audit(request, who, Action.NUMBERS_ADD, ",".join(body.numbers), "refused" if taken else "ok")
    if taken:
        raise ApiError(409, "number_taken", "these numbers are in use elsewhere (another pool, a tenant's reply "
                       "number or a provider's sender number); none was added", numbers=taken)  # fmt: skip
    return await list_numbers(request, who)


@router.delete("/v1/masking/numbers/{number}", status_code=204, responses=error_responses(404))
async def remove_number(request: Request, number: PoolNumber, who: Masker) -> Response:
    if not await _masking(request).remove_number(who.name, number):
        raise ApiError(404, "not_found", f"{number} is not in this tenant's pool")
    await _audit(request, who, Action.NUMBERS_REMOVE, number)
    return Response(status_code=204)


@router.post("/v1/masked-sessions", status_code=201, responses=OPENED)
async def open_session(request: Request, body: SessionIn, who: Masker) -> JSONResponse:
    a, b = body.participants
    if a.phone == b.phone or a.id == b.id:
        raise ApiError(422, "validation_failed", "the two participants must differ",
                       detail=[{"path": "participants[1]", "message": "same id or phone as participants[0]"}])  # fmt: skip
    ttl = parse_duration(body.ttl)  # valid and at most 90 days: masking.model.Ttl
    now = request.app.state.clock()
    opened = await _masking(request).open(who.name, "ms_" + uuid.uuid4().hex, body.participants, ttl, now,
                                          body.correlation_key, body.record)  # fmt: skip
    if isinstance(opened, Exhausted):
        raise ApiError(409, "pool_exhausted", f"no proxy number is free for these participants; the pool needs at least {opened.needed} numbers",
                       needed=opened.needed, available=opened.available)  # fmt: skip
    assert isinstance(opened, Opened)
    if opened.created:
        await _audit(request, who, Action.SESSION_OPEN, opened.session.id, record=opened.session.record)
    return JSONResponse(session_view(opened.session, now), status_code=201 if opened.created else 200)


async def _owned(request: Request, who: Principal, sid: str) -> Session:
    session = await _masking(request).session_for(who.name, sid)
    if session is None:
        raise ApiError(404, "not_found", f"no masked session {sid!r}")
    return session


@router.get("/v1/masked-sessions/{sid}", responses=error_responses(404))
async def show_session(request: Request, sid: SessionId, who: Masker) -> dict[str, Any]:
    view = await _full_view(request, await _owned(request, who, sid))
    await _audit(request, who, Action.SESSION_READ, sid)  # its calls and texts, recording links included
    return view


@router.delete("/v1/masked-sessions/{sid}", responses=error_responses(404))
async def close_session(request: Request, sid: SessionId, who: Masker) -> dict[str, Any]:
    await _owned(request, who, sid)
    await _masking(request).close(sid)
    await _audit(request, who, Action.SESSION_CLOSE, sid)
    return await _full_view(request, await _owned(request, who, sid))


async def _full_view(request: Request, session: Session) -> dict[str, Any]:
    view = session_view(session, request.app.state.clock())
    view["interactions"] = [i.model_dump(mode="json") for i in await _masking(request).interactions(session.id)]
    return view


async def _audit(request: Request, who: Principal, action: Action, target: str, outcome: str = "ok",
                 **detail: Any) -> None:  # fmt: skip
    await request.app.state.audit.record(who, action, target, client_address(request), outcome, **detail)


@router.post("/v1/calls", status_code=201, responses=error_responses(404, 409, 502))
async def click_to_call(request: Request, body: CallIn, who: Caller) -> dict[str, Any]:
    """Ring the agent first; when they answer, bridge to the participant. Nobody sees a real number."""
    session = await _owned(request, who, body.session_id)
    participant = session.by_id(body.participant_id)
    if participant is None:
        raise ApiError(404, "not_found", f"no participant {body.participant_id!r} in session {session.id}")
    if not session.is_open(request.app.state.clock()):
        raise ApiError(409, "session_closed", f"session {session.id} is {session.status.value} or expired")
    base = request.app.state.settings.server.public_url or str(request.base_url).rstrip("/")
    telephony: Telephony = request.app.state.telephony
    # Only an opaque id in the URL: ids in it could be rewritten (an agent id "x&session=...") or cut short.
    call_id = await _masking(request).remember_agent_call(who.name, session.id, participant.id, body.agent.id)
    url = f"{base}/webhooks/twilio/voice/agent?{urlencode({'call': call_id})}"
    result = await telephony.call(tenant=who.name, from_=participant.proxy, to=body.agent.phone, url=url,
                                  status_callback=f"{base}/webhooks/twilio/status")  # fmt: skip
    if result.provider_id is None:
        raise ApiError(502, "call_failed", f"the call could not be placed: {result.detail}")
    await _audit(request, who, Action.CALL_PLACE, session.id, participant=participant.id, agent=body.agent.id,
                 call=result.provider_id)  # fmt: skip
    log.info(
        "agent %s calling participant %s of %s via %s", body.agent.id, participant.id, session.id, participant.proxy
    )
    return {"call_id": result.provider_id, "session_id": session.id, "agent": {"id": body.agent.id},
            "participant": {"id": participant.id, "proxy": participant.proxy}}  # fmt: skip
