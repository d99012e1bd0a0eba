"""Twilio voice and SMS webhooks for masked numbers and agent calls (an escalation call's script is
gateway/http/escalation_calls.py's).

Each handler checks X-Twilio-Signature first (channels/twilio/signature.py).
Routing rule: an inbound call or text from real number A to proxy number P
belongs to the one open session in which A holds P (masking.assign keeps that
unique); the other participant is reached showing *their* proxy number.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from channels.addresses import mask
from channels.twilio.signature import twilio_form
from channels.webhooks import public_url
from masking import twiml
from masking.model import Interaction, Session
from masking.store import MaskingStore
from masking.telephony import Telephony
from rules.model import Channel, StopEvent

log = logging.getLogger("parley.masking")
router = APIRouter(prefix="/webhooks/twilio/voice", tags=["webhooks"])
Ref = Annotated[str, Query(max_length=64)]  # our own ids, echoed back by Twilio in the callback URL


def xml(body: str) -> Response:
    return Response(body, media_type="application/xml")


def _masking(request: Request) -> MaskingStore:
    store: MaskingStore = request.app.state.masking
    return store


async def signed_form(request: Request) -> dict[str, str]:
    settings = request.app.state.settings
    return await twilio_form(request, settings.twilio_auth_token, settings.server.public_url)


def callback(request: Request, path: str, **query: str) -> str:
    """One of our voice webhooks' URLs, its query encoded (an id may hold `&`, `#`, spaces...)."""
    base = public_url(request, request.app.state.settings.server.public_url).split("/webhooks/")[0]
    return f"{base}/webhooks/twilio/voice/{path}?{urlencode(query)}"


async def _session_for_call(request: Request, caller: str, proxy: str) -> tuple[Session | None, str]:
    """The open session routing `caller` through `proxy`, and the tenant owning the number."""
    masking = _masking(request)
    tenant = await masking.number_owner(proxy)
    session = await masking.route(tenant, caller, proxy) if tenant else None
    if session is None or not session.is_open(request.app.state.clock()):
        return None, tenant or ""
    return session, tenant or ""


@router.post("")
async def inbound_call(request: Request) -> Response:
    form = await signed_form(request)
    caller, proxy, sid = form.get("From", ""), form.get("To", ""), form.get("CallSid", "")
    session, _ = await _session_for_call(request, caller, proxy)
    if session is None:
        log.info("call from %s to proxy %s: no open session; refused", mask(Channel.CALL, caller), proxy)
        return xml(twiml.ended("en"))
    me = session.by_phone(caller)
    assert me is not None  # route() found the session by this caller's number
    other = session.other(me.id)
    now: datetime = request.app.state.clock()
    await _masking(request).interact(session.id, Interaction(kind="call", direction=f"{me.id} -> {other.id}",
                                                             status="connecting", at=now, provider_id=sid))  # fmt: skip
    return xml(twiml.connect(to=other.phone, caller_id=other.proxy, locale=me.locale, record=session.record,
                              action=callback(request, "dial-status", session=session.id),
                              recording_callback=callback(request, "recording", session=session.id)))  # fmt: skip


@router.post("/dial-status")
async def dial_status(request: Request, session: Ref) -> Response:
    form = await signed_form(request)
    duration = form.get("DialCallDuration")
    await _masking(request).update_interaction(
        session, form.get("CallSid", ""), status=form.get("DialCallStatus", "completed"),
        duration_s=int(duration) if duration and duration.isdigit() else None,
    )  # fmt: skip
    return xml(twiml.hangup())


@router.post("/recording")
async def recording(request: Request, session: Ref) -> Response:
    form = await signed_form(request)
    await _masking(request).update_interaction(session, form.get("CallSid", ""), recording_url=form.get("RecordingUrl"))
    return Response(status_code=204)


@router.post("/agent")
async def agent_answered(request: Request, call: Ref = "") -> Response:
    """The agent picked up: connect them to the participant, who sees their session's proxy number.
    `call` names the context POST /v1/calls stored; its session must still be the same tenant's."""
    await signed_form(request)
    masking = _masking(request)
    context = await masking.agent_call(call)
    found = await masking.session_for(context.tenant, context.session) if context else None
    target = found.by_id(context.participant) if found and context else None
    if context is None or found is None or target is None or not found.is_open(request.app.state.clock()):
        return xml(twiml.ended("en"))
    await masking.interact(found.id, Interaction(kind="agent_call", direction=f"agent:{context.agent} -> {target.id}",
                                                 status="connecting", at=request.app.state.clock()))  # fmt: skip
    return xml(twiml.connect(to=target.phone, caller_id=target.proxy, locale=target.locale, record=found.record,
                              action=callback(request, "dial-status", session=found.id),
                              recording_callback=callback(request, "recording", session=found.id)))  # fmt: skip


async def relay_sms(request: Request, form: dict[str, str]) -> Response | None:
    """A text to a proxy number: relay it to the other participant (None: not a proxy number)."""
    sender, proxy, body = form.get("From", ""), form.get("To", ""), form.get("Body", "")
    masking = _masking(request)
    if await masking.number_owner(proxy) is None:
        return None
    session, tenant = await _session_for_call(request, sender, proxy)
    if session is None:
        return xml(twiml.ended_sms("en"))
    me = session.by_phone(sender)
    assert me is not None
    other = session.other(me.id)
    telephony: Telephony = request.app.state.telephony
    result = await telephony.message(tenant=tenant, from_=other.proxy, to=other.phone, body=body)
    now = request.app.state.clock()
    await masking.interact(session.id, Interaction(kind="sms", direction=f"{me.id} -> {other.id}",
                                                   status=result.outcome.value, at=now, provider_id=result.provider_id))  # fmt: skip
    if session.correlation_key:
        await _responded(request, tenant, session.correlation_key, now)
    return xml(twiml.empty_messaging())


async def _responded(request: Request, tenant: str, correlation_key: str, now: datetime) -> None:
    store = request.app.state.store
    ids = await store.correlated(tenant, correlation_key)
    await store.stop_all(tenant, ids, StopEvent.RESPONDED, now, source="masked_sms")
