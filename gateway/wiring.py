"""Building the pieces from settings: channels, the worker runtime, and what the API needs of them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from channels.providers import build_registry
from channels.registry import Registry
from channels.rendering.render import DELIVERY_RECHECK_S, Renderer
from channels.slack.channel import SlackChannel
from channels.twilio.sms import SmsChannel
from channels.twilio.voice import VoiceChannel
from gateway.config import Settings
from gateway.delivery.runner import Runtime
from gateway.http.webhooks import SlackUpdater
from gateway.state.store import Store
from masking.telephony import Telephony, TwilioTelephony
from rules.model import Channel


def channels_for(settings: Settings, store: Store) -> Registry:
    """Configured providers; every channel without one uses the outbox (docs/channels.md)."""
    return build_registry(settings.providers, store, public_url=settings.server.public_url)


def store_for(settings: Settings, url: str | None = None) -> Store:
    """The state store on `url` (default: the configured Redis), as redis.* configures it."""
    target = url or settings.redis_url
    if target is None:
        raise ValueError("no Redis URL: set REDIS_URL or redis.url")
    return Store.connect(target, settings.retention, settings.redis_wait, shards=settings.redis_shards,
                         queue_url=settings.redis_queue_url)  # fmt: skip


def runtime_for(settings: Settings, url: str) -> Runtime:
    store = store_for(settings, url)
    return Runtime(
        store=store,
        channels=channels_for(settings, store),
        renderer=Renderer(settings.templates_dir, recheck=DELIVERY_RECHECK_S),
        clock=lambda: datetime.now(UTC),
    )


def telephony_for(registry: Registry) -> Telephony | None:
    """Masked calls and relays go through the configured Twilio account (None: the outbox)."""
    for channel in (Channel.SMS, Channel.CALL):
        adapter = registry[channel]
        if isinstance(adapter, SmsChannel | VoiceChannel):
            return TwilioTelephony(adapter.twilio)
    return None


def slack_updater_for(registry: Registry) -> SlackUpdater | None:
    """After an Acknowledge click, rewrite the Slack message to say who and when."""
    slack = registry[Channel.SLACK]
    if not isinstance(slack, SlackChannel):
        return None

    async def update(payload: dict[str, Any], who: str, when: datetime) -> None:
        channel = str(payload.get("channel", {}).get("id", ""))
        message = payload.get("message", {})
        ts = str(message.get("ts") or payload.get("container", {}).get("message_ts") or "")
        if channel and ts:
            await slack.mark_acknowledged(channel, ts, str(message.get("text", "")), who, when)

    return update
