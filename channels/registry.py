"""Which adapter serves each channel: an explicit table, no plugin scanning."""

from __future__ import annotations

from collections.abc import Mapping

from channels.base import Channel
from rules.model import Channel as ChannelName


class Registry:
    def __init__(self, adapters: Mapping[ChannelName, Channel]) -> None:
        missing = [c for c in ChannelName if c not in adapters]
        if missing:
            raise ValueError(f"no adapter for channels: {', '.join(missing)}")
        self._adapters = dict(adapters)

    def __getitem__(self, channel: ChannelName) -> Channel:
        return self._adapters[channel]

    def describe(self) -> dict[str, str]:
        return {str(c): type(a).__name__ for c, a in self._adapters.items()}
