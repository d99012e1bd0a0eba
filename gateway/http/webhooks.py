"""Provider webhooks: Twilio delivery receipts and inbound SMS, Slack's Acknowledge button.

Every request is signature-checked before anything else happens; a bad
signature is 403 and changes nothing. Twilio signs the URL it called, so behind
a proxy we rebuild that URL from server.public_url (never from X-Forwarded-* headers).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import Response

from channels.addresses import mask
from channels.slack.signature import slack_body
from channels.twilio.receipts import TWILIO_STATUS
from channels.webhooks import Forbidden
from gateway.access import Tenant
from gateway.config import Settings
from gateway.delivery.receipts import apply_receipt
from gateway.state.store import Store
from masking.voice import VoiceRelay
from rules.model import Channel, StopEvent
from rules.status import DeliveryStatus

log = logging.getLogger("parley.webhooks")
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'
STOP_WORDS = {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "OPTOUT", "REVOKE"}
START_WORDS = {"START", "YES", "UNSTOP", "OPTIN"}
# Slack's signature holds while its timestamp is within 5 minutes of our clock, either way: a request is
# replayable for up to 10 minutes after it is first seen, so it is remembered a little longer than that.
SLACK_REPLAY_TTL_S = 11 * 60
# After an Acknowledge click: (Slack's payload, who clicked, when) -> the message rewritten to say so.
SlackUpdater = Callable[[dict[str, Any], str, datetime], Awaitable[None]]


def _twiml(body: str = EMPTY_TWIML) -> Response:
    return Response(body, media_type="application/xml")


@dataclass
class ProviderWebhooks:
    """Twilio's receipts and inbound texts, Slack's button: built with what they use (gateway/http/app.py).
    `slack_acknowledged` rewrites the Slack message after a click (gateway/wiring.py; None: left as is)."""

    settings: Settings
    store: Store
    clock: Callable[[], datetime]
    relay: VoiceRelay
    slack_acknowledged: SlackUpdater | None = None

    def router(self) -> APIRouter:
        router = APIRouter(prefix="/webhooks", include_in_schema=True, tags=["webhooks"])
        router.add_api_route("/twilio/status", self.twilio_status, methods=["POST"])
        router.add_api_route("/twilio/sms", self.twilio_sms, methods=["POST"])
        router.add_api_route("/slack/interactions", self.slack_interactions, methods=["POST"])
        return router

    async def twilio_status(self, request: Request) -> Response:
        form = await self.relay.hooks.signed_form(request)
        sid = form.get("MessageSid") or form.get("CallSid") or ""
        raw_status = form.get("MessageStatus") or form.get("CallStatus") or ""
        new = TWILIO_STATUS.get(raw_status)
        found = await self.store.by_provider_id(sid) if sid else None
        if new is None or found is None:
            return Response(status_code=204)  # progress only, or not a message of ours
        nid, attempt = found
        error = f"twilio {raw_status}" + (f" (error {form['ErrorCode']})" if form.get("ErrorCode") else "")
        await apply_receipt(
            self.store, nid, attempt, new, self.clock(), error if new is DeliveryStatus.FAILED else None
        )
        return Response(status_code=204)

    async def twilio_sms(self, request: Request) -> Response:
        form = await self.relay.hooks.signed_form(request)
        relayed = await self.relay.relay_sms(form)
        if relayed is not None:
            return relayed  # a text to a proxy number of a masked session
        sender, receiver, text = form.get("From", ""), form.get("To", ""), form.get("Body", "")
        tenant = self.settings.tenant_for_number(receiver)
        sid = form.get("MessageSid", "")
        if tenant is None or await self.store.seen("twilio-sms", sid):
            return _twiml()  # not one of our tenants' numbers, or a replayed delivery
        await self._reply(tenant, sender, text)
        await self.store.mark_seen("twilio-sms", sid)  # after: a retry of a reply that failed half-way counts
        return _twiml()

    async def _reply(self, tenant: Tenant, sender: str, text: str) -> None:
        """An SMS to a tenant's number: STOP/START, or an answer that stops the sender's notifications.
        Idempotent: a provider's retry of a delivery handled half-way does it again, whole."""
        keyword = text.strip().upper()
        if keyword in STOP_WORDS or keyword in START_WORDS:
            await self.store.opt_out(tenant.name, sender, keyword in STOP_WORDS)
            log.info(
                "sms %s from %s for tenant %s",
                "opt-out" if keyword in STOP_WORDS else "opt-in",
                mask(Channel.SMS, sender),
                tenant.name,
            )
        if keyword in STOP_WORDS:
            return  # unsubscribing is not an answer; other channels carry on
        ids = await self.store.by_phone(tenant.name, sender)
        await self.store.stop_all(tenant.name, ids, StopEvent.RESPONDED, self.clock(), source="sms",
                             only=lambda stored: stored.intent.recipient.phone == sender)  # fmt: skip

    async def slack_interactions(self, request: Request) -> Response:
        await slack_body(request, self.settings.slack_signing_secret)
        seen = f"{request.headers['x-slack-request-timestamp']}:{request.headers['x-slack-signature']}"
        if await self.store.seen("slack", seen):
            return Response(status_code=200)  # a replay of a request already handled: answered, nothing done
        await self._acknowledge(request)
        # Remembered once handled, so a retry after a failure half-way is handled again (a stop is
        # idempotent), while a replay of a handled request is ignored.
        await self.store.mark_seen("slack", seen, SLACK_REPLAY_TTL_S)
        return Response(status_code=200)

    async def _acknowledge(self, request: Request) -> None:
        """An Acknowledge click: stop the notification and say so in the Slack message."""
        payload = json.loads((await request.form()).get("payload") or "{}")  # type: ignore[arg-type]
        action = next((a for a in payload.get("actions", []) if a.get("action_id") == "parley_ack"), None)
        if action is None:
            return
        nid = str(action.get("value", "")).split("|")[0]
        stored = await self.store.load(nid)
        if stored is None:
            return
        user = payload.get("user", {})
        who = user.get("username") or user.get("name") or user.get("id", "someone")
        now = self.clock()
        await self.store.stop(stored.tenant, stored, StopEvent.ACKNOWLEDGED, now, source=f"slack:{user.get('id', '')}")
        if self.slack_acknowledged is not None:
            await self.slack_acknowledged(payload, who, now)


def install_forbidden(app: FastAPI) -> None:
    """A bad or missing provider signature is 403 in the documented error shape, and logged."""

    @app.exception_handler(Forbidden)
    async def forbidden(_: Request, exc: Forbidden) -> Response:
        log.warning("rejected a %s webhook with a missing or bad signature", exc)
        return Response(
            '{"error": "forbidden", "message": "bad or missing signature"}',
            status_code=403,
            media_type="application/json",
        )
