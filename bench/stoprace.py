"""Stop race: answer each notification (POST .../events responded) at the moment its next step falls due,
and count sends that happened after the stop.

Comparing clocks cannot prove "no send after the acknowledgement": the outbox message's `at` is read
before its Redis script runs, so a message stamped before the acknowledgement could still have been
written after it. We use Redis's own order instead. Redis runs scripts one at a time and publishes
keyspace notifications, in that order, while it runs them: a send is the `sadd` on the notification's
outbox-sent set, a stop is the first `expire` on its hash (the stop script hands the keys their
retention; nothing else expires an active notification of this policy). A send published after the
stop ran after it, and the stop ran before the API answered, so counting sends after the stop counts
every send after the acknowledgement (and any in the short stretch between the stop and its answer).
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import redis

from bench.env import HOST, BenchError, Env
from bench.http import Pool
from bench.scenario import KEY
from bench.seed import arm_later, seed, spread
from bench.stats import summary_ms
from gateway.state import keys

EVENT = "bench.later"
WORKERS = 2
CONNECTIONS = 32
LEAD_S = 2.0
SPACE = "__keyspace@0__:"
# The benchmark's Redis has one shard (redis.shards 1): every notification key starts with its prefix. Key
# names come from gateway/state/keys.py, so that a renamed key cannot leave this phase counting nothing.
NOTIFICATIONS = SPACE + keys.notification_prefix(0) + "*"
MARK = keys.notification_prefix(0) + "bench-end:outbox"


class Listener:
    """Keyspace notifications for notification keys, in the order Redis executed them."""

    def __init__(self, url: str) -> None:
        self.client = redis.Redis.from_url(url, decode_responses=True)
        self.events: list[tuple[str, str]] = []
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._listen, name="bench-keyspace", daemon=True)

    def start(self) -> None:
        self.client.config_set("notify-keyspace-events", "Kgs")  # K: keyspace; g: expire; s: sadd
        self.pubsub = self.client.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
        self.pubsub.psubscribe(NOTIFICATIONS)
        self.pubsub.get_message(timeout=1.0)  # the subscription is confirmed
        self._thread.start()

    def _listen(self) -> None:
        while True:
            message = self.pubsub.get_message(timeout=0.1)
            if message is not None and message["type"] == "pmessage":
                key = str(message["channel"]).removeprefix(SPACE)
                self.events.append((key, str(message["data"])))
                if key == MARK:
                    self._done.set()
                    return

    def stop(self) -> None:
        """Wait until every event published so far arrived (a marker after them), then unsubscribe."""
        if self._thread.is_alive():
            self.client.sadd(MARK, "1")
            if not self._done.wait(timeout=30):
                raise BenchError("stop race: the keyspace notifications did not all arrive")
        self.client.delete(MARK)
        self.client.config_set("notify-keyspace-events", "")
        self.pubsub.close()
        self.client.close()


def run(env: Env, count: int, window_s: float) -> dict[str, Any]:
    api, base = env.serve_parley()
    started = env.workers(WORKERS)
    listener = Listener(env.server.url)
    try:
        ids = seed(env, EVENT, count)
        listener.start()
        schedule = spread(ids, int((time.time() + LEAD_S) * 1000), window_s)
        arm_later(env.client, schedule)
        answers = asyncio.run(_respond(int(base.rsplit(":", 1)[1]), schedule))
        time.sleep(1.0)  # anything a worker still has in flight
    finally:
        env.stop_all(started)
        env.stop(api)
        listener.stop()
    result = {**analyse(listener.events, ids), **_answers(answers), "notifications": count, "window_s": window_s}
    env.clear()
    return result


async def _respond(port: int, schedule: list[tuple[str, int]]) -> list[tuple[int, str, float, float]]:
    """POST responded for each notification at its due time; (status, result, slip s, round trip s) each."""
    pool = Pool(HOST, port, CONNECTIONS)
    headers = {"Authorization": f"Bearer {KEY}"}

    async def one(nid: str, due: float) -> tuple[int, str, float, float]:
        sent = time.time()
        status, body = await pool.request("POST", f"/v1/notifications/{nid}/events", {"type": "responded"}, headers)
        return status, str((body or {}).get("result")), sent - due, time.time() - sent

    tasks = []
    for nid, due_ms in schedule:
        delay = due_ms / 1000 - time.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(nid, due_ms / 1000)))
    try:
        return list(await asyncio.gather(*tasks))
    finally:
        await pool.close()


def analyse(events: list[tuple[str, str]], ids: list[str]) -> dict[str, int]:
    """Sends before and after each notification's stop, in Redis's execution order. `stops_seen` must be
    every notification: fewer means the events were not observed, and the other counts mean nothing."""
    hashes = {keys.notification(nid): nid for nid in ids}
    sent_sets = {keys.outbox_sent(nid): nid for nid in ids}
    stop_at: dict[str, int] = {}
    sends: list[tuple[str, int]] = []
    for index, (key, event) in enumerate(events):
        if event == "expire" and key in hashes:
            stop_at.setdefault(hashes[key], index)
        elif event == "sadd" and key in sent_sets:
            sends.append((sent_sets[key], index))
    late = sum(1 for nid, index in sends if index > stop_at.get(nid, len(events)))
    before = sum(1 for nid, index in sends if index < stop_at.get(nid, -1))
    return {"late_sends": late, "sends_before_stop": before, "stops_seen": len(stop_at)}


def _answers(answers: list[tuple[int, str, float, float]]) -> dict[str, Any]:
    slips = [a[2] * 1000 for a in answers]
    trips = [a[3] * 1000 for a in answers]
    return {
        "stopped": sum(1 for a in answers if a[0] == 200 and a[1] == "stopped"),
        "not_stopped": sum(1 for a in answers if a[0] != 200 or a[1] != "stopped"),
        "request_slip": summary_ms(slips), "ack": summary_ms(trips),
    }  # fmt: skip
