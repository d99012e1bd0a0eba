"""The script of an escalation's call step: Twilio asks for it when the recipient answers.

Answering counts as the recipient's response (the escalation stops); the script speaks the rendered
`speech` part and, when the step names a `bridge`, offers to connect the recipient to that person by
pressing 1 (masked: the bridged person sees our number). The call itself was placed by the voice
adapter (channels/twilio/voice.py) with these URLs; masked-session calls are masking/voice.py's.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from fastapi import APIRouter, Request
from fastapi.responses import Response

from channels.rendering.render import Renderer, RenderError
from channels.twilio.signature import VOICE_PREFIX, Ref, TwilioHooks, xml
from gateway.state.store import Store
from masking import twiml
from rules.engine import person
from rules.model import Channel, StopEvent

log = logging.getLogger("parley.calls")


@dataclass(frozen=True)
class EscalationCalls:
    store: Store
    renderer: Renderer
    hooks: TwilioHooks
    clock: Callable[[], datetime]

    def router(self) -> APIRouter:
        router = APIRouter(prefix=VOICE_PREFIX, tags=["webhooks"])
        router.add_api_route("/outbound", self.escalation_answered, methods=["POST"])
        router.add_api_route("/outbound/press", self.escalation_pressed, methods=["POST"])
        return router

    async def escalation_answered(self, request: Request, notification: Ref, attempt: Ref) -> Response:
        """An escalation call was answered: that counts as a response; speak, and offer the bridge."""
        form = await self.hooks.signed_form(request)
        stored = await self.store.load(notification)
        delivery = stored.deliveries.get(attempt) if stored else None
        if stored is None or delivery is None:
            return xml(twiml.hangup())
        who = person(stored.intent, delivery.target) or stored.intent.recipient
        try:
            speech = self.renderer.render(delivery.template, Channel.CALL, stored.intent, who)
        except RenderError as exc:
            log.error("escalation call %s: %s", notification, exc)
            return xml(twiml.hangup())
        await self.store.stop(stored.tenant, stored, StopEvent.RESPONDED, self.clock(), source="call:answered")
        bridge = person(stored.intent, delivery.bridge) if delivery.bridge else None
        action = None
        if bridge is not None and bridge.phone:
            action = self.hooks.callback(request, "outbound/press", notification=notification, attempt=attempt)
        log.info("escalation call %s answered (%s)", notification, form.get("CallSid", ""))
        return xml(twiml.escalation_call(speech=speech.parts["speech"], locale=who.locale, gather_action=action))

    async def escalation_pressed(self, request: Request, notification: Ref, attempt: Ref) -> Response:
        """Pressing 1 bridges to the counterpart, who sees our number, never the recipient's."""
        form = await self.hooks.signed_form(request)
        stored = await self.store.load(notification)
        delivery = stored.deliveries.get(attempt) if stored else None
        bridge = person(stored.intent, delivery.bridge) if stored and delivery and delivery.bridge else None
        if form.get("Digits") != "1" or bridge is None or not bridge.phone:
            return xml(twiml.hangup())
        return xml(twiml.connect(to=bridge.phone, caller_id=form.get("From", ""), locale=bridge.locale, record=False,
                                  action=self.hooks.callback(request, "dial-status", session=""),
                                  recording_callback=""))  # fmt: skip
