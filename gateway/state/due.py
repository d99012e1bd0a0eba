"""The due sets: leasing due notifications for the timer (gateway/delivery/worker.py)."""

from __future__ import annotations

import random
from dataclasses import dataclass

import redis

from gateway.state import keys, lua


@dataclass(frozen=True)
class Leased:
    id: str
    due_ms: int
    token: int


class TimerStore:
    """The timer's synchronous access (it runs in a worker's thread, beside RQ). Each shard's due set
    is leased on its own (on a cluster, on the node that has it); a look at every shard's first due
    time is one pipeline, so an idle timer costs one round trip per node per poll."""

    def __init__(self, client: redis.Redis, shards: int = 1) -> None:
        self.r = client
        self.shards = shards
        self._lease = client.register_script(lua.LEASE)
        self._next = random.randrange(shards)  # timers in several workers start on different shards

    def lease(self, now_ms: int, limit: int, lease_ms: int) -> list[Leased]:
        due = [shard for shard, first in enumerate(self._firsts()) if first is not None and first <= now_ms]
        self._next = (self._next + 1) % self.shards
        due.sort(key=lambda shard: (shard - self._next) % self.shards)  # a backlog is shared out in turns
        leased: list[Leased] = []
        for shard in due:
            if len(leased) >= limit:
                break
            args: list[int | str] = [now_ms, limit - len(leased), lease_ms, keys.notification_prefix(shard)]
            flat = self._lease(keys=[keys.due(shard)], args=args)
            text = [x.decode() if isinstance(x, bytes) else str(x) for x in flat]
            leased += [Leased(text[i], int(float(text[i + 1])), int(text[i + 2])) for i in range(0, len(text), 3)]
        return leased

    def due_count(self, now_ms: int) -> int:
        """Due steps not leased yet."""
        pipe = self.r.pipeline(transaction=False)
        for shard in range(self.shards):
            pipe.zcount(keys.due(shard), "-inf", now_ms)
        return sum(int(n) for n in pipe.execute())

    def next_due_ms(self) -> int | None:
        firsts = [first for first in self._firsts() if first is not None]
        return min(firsts) if firsts else None

    def _firsts(self) -> list[int | None]:
        """Each shard's earliest due time (None: nothing due in it)."""
        pipe = self.r.pipeline(transaction=False)
        for shard in range(self.shards):
            pipe.zrange(keys.due(shard), 0, 0, withscores=True)
        return [int(found[0][1]) if found else None for found in pipe.execute()]
