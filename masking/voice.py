"""Twilio voice and SMS webhooks for masked numbers and agent calls (an escalation call's script is
gateway/http/escalation_calls.py's).

Each handler checks X-Twilio-Signature first (channels/twilio/signature.py).
Routing rule: an inbound call or text from real number A to proxy number P
belongs to the one open session in which A holds P (masking.assign keeps that
unique); the other participant is reached showing *their* proxy number.

Everything a handler needs is given to `VoiceRelay` when the app is built (gateway/http/masking.py):
no handler looks services up at request time.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from fastapi import APIRouter, Request
from fastapi.responses import Response

from channels.addresses import mask
from channels.twilio.signature import VOICE_PREFIX, Ref, TwilioHooks, xml
from masking import twiml
from masking.model import Interaction, Session
from masking.store import MaskingStore
from masking.telephony import Telephony
from rules.model import Channel

log = logging.getLogger("parley.masking")
# A text relayed in a session with a correlation key counts as a response to that conversation's
# notifications: (tenant, correlation key, when) -> the gateway stops them.
OnResponse = Callable[[str, str, datetime], Awaitable[None]]


@dataclass(frozen=True)
class VoiceRelay:
    masking: MaskingStore
    telephony: Telephony
    hooks: TwilioHooks
    clock: Callable[[], datetime]
    on_response: OnResponse

    def router(self) -> APIRouter:
        router = APIRouter(prefix=VOICE_PREFIX, tags=["webhooks"])
        router.add_api_route("", self.inbound_call, methods=["POST"])
        router.add_api_route("/dial-status", self.dial_status, methods=["POST"])
        router.add_api_route("/recording", self.recording, methods=["POST"])
        router.add_api_route("/agent", self.agent_answered, methods=["POST"])
        return router

    async def _session_for_call(self, caller: str, proxy: str) -> tuple[Session | None, str]:
        """The open session routing `caller` through `proxy`, and the tenant owning the number."""
        tenant = await self.masking.number_owner(proxy)
        session = await self.masking.route(tenant, caller, proxy) if tenant else None
        if session is None or not session.is_open(self.clock()):
            return None, tenant or ""
        return session, tenant or ""

    def _connect(self, request: Request, session: Session, to: str, caller_id: str, locale: str) -> Response:
        return xml(twiml.connect(to=to, caller_id=caller_id, locale=locale, record=session.record,
                                 action=self.hooks.callback(request, "dial-status", session=session.id),
                                 recording_callback=self.hooks.callback(request, "recording", session=session.id)))  # fmt: skip

    async def inbound_call(self, request: Request) -> Response:
        form = await self.hooks.signed_form(request)
        caller, proxy, sid = form.get("From", ""), form.get("To", ""), form.get("CallSid", "")
        session, _ = await self._session_for_call(caller, proxy)
        if session is None:
            log.info("call from %s to proxy %s: no open session; refused", mask(Channel.CALL, caller), proxy)
            return xml(twiml.ended("en"))
        me = session.by_phone(caller)
        assert me is not None  # route() found the session by this caller's number
        other = session.other(me.id)
        await self.masking.interact(session.id, Interaction(kind="call", direction=f"{me.id} -> {other.id}",
                                                            status="connecting", at=self.clock(), provider_id=sid))  # fmt: skip
        return self._connect(request, session, other.phone, other.proxy, me.locale)

    async def dial_status(self, request: Request, session: Ref) -> Response:
        form = await self.hooks.signed_form(request)
        duration = form.get("DialCallDuration")
        await self.masking.update_interaction(
            session, form.get("CallSid", ""), status=form.get("DialCallStatus", "completed"),
            duration_s=int(duration) if duration and duration.isdigit() else None,
        )  # fmt: skip
        return xml(twiml.hangup())

    async def recording(self, request: Request, session: Ref) -> Response:
        form = await self.hooks.signed_form(request)
        await self.masking.update_interaction(session, form.get("CallSid", ""), recording_url=form.get("RecordingUrl"))
        return Response(status_code=204)

    async def agent_answered(self, request: Request, call: Ref = "") -> Response:
        """The agent picked up: connect them to the participant, who sees their session's proxy number.
        `call` names the context POST /v1/calls stored; its session must still be the same tenant's."""
        await self.hooks.signed_form(request)
        context = await self.masking.agent_call(call)
        found = await self.masking.session_for(context.tenant, context.session) if context else None
        target = found.by_id(context.participant) if found and context else None
        if context is None or found is None or target is None or not found.is_open(self.clock()):
            return xml(twiml.ended("en"))
        await self.masking.interact(found.id, Interaction(kind="agent_call", direction=f"agent:{context.agent} -> {target.id}",
                                                          status="connecting", at=self.clock()))  # fmt: skip
        return self._connect(request, found, target.phone, target.proxy, target.locale)

    async def relay_sms(self, form: dict[str, str]) -> Response | None:
        """A text to a proxy number (its signature already checked): relay it to the other participant
        (None: not a proxy number)."""
        sender, proxy, body = form.get("From", ""), form.get("To", ""), form.get("Body", "")
        if await self.masking.number_owner(proxy) is None:
            return None
        session, tenant = await self._session_for_call(sender, proxy)
        if session is None:
            return xml(twiml.ended_sms("en"))
        me = session.by_phone(sender)
        assert me is not None
        other = session.other(me.id)
        result = await self.telephony.message(tenant=tenant, from_=other.proxy, to=other.phone, body=body)
        now = self.clock()
        await self.masking.interact(session.id, Interaction(kind="sms", direction=f"{me.id} -> {other.id}",
                                                            status=result.outcome.value, at=now, provider_id=result.provider_id))  # fmt: skip
        if session.correlation_key:
            await self.on_response(tenant, session.correlation_key, now)
        return xml(twiml.empty_messaging())
