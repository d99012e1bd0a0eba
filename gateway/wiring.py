"""Building the pieces from settings: store, channels, runtime, the API app."""

from __future__ import annotations

from datetime import UTC, datetime

from channels.outbox import OutboxChannel
from channels.registry import Registry
from channels.render import Renderer
from gateway.config import Settings
from gateway.runner import Runtime
from gateway.store import Store
from rules.model import Channel


def channels_for(settings: Settings, store: Store) -> Registry:
    """Every channel uses the outbox until its provider is configured (docs/deployment.md)."""
    return Registry({channel: OutboxChannel(channel, store) for channel in Channel})


def runtime_for(settings: Settings, url: str) -> Runtime:
    store = Store.connect(url, settings.retention)
    return Runtime(
        store=store,
        channels=channels_for(settings, store),
        renderer=Renderer(settings.templates_dir),
        clock=lambda: datetime.now(UTC),
    )
