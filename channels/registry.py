"""Which adapter serves each channel: an explicit table, no plugin scanning."""

from __future__ import annotations

from collections.abc import Mapping

from channels.base import Adapter
from rules.model import Channel


class Registry:
    def __init__(self, adapters: Mapping[Channel, Adapter]) -> None:
        missing = [c for c in Channel if c not in adapters]
        if missing:
            raise ValueError(f"no adapter for channels: {', '.join(missing)}")
        self._adapters = dict(adapters)

    def __getitem__(self, channel: Channel) -> Adapter:
        return self._adapters[channel]

    def describe(self) -> dict[str, str]:
        return {str(c): type(a).__name__ for c, a in self._adapters.items()}
