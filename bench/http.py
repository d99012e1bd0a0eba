"""A minimal HTTP/1.1 keep-alive client for loopback, cheap enough not to be the bottleneck it measures."""

from __future__ import annotations

import asyncio
import json
from typing import Any


class Connection:
    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str, body: Any, headers: dict[str, str]) -> tuple[int, Any]:
        if self.writer is None or self.reader is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        data = json.dumps(body).encode()
        head = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}", "Content-Type: application/json",
                f"Content-Length: {len(data)}", *(f"{k}: {v}" for k, v in headers.items())]  # fmt: skip
        self.writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + data)
        raw = (await self.reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        status = int(raw[0].split(" ", 2)[1])
        length = next((int(h.split(":", 1)[1]) for h in raw[1:] if h.lower().startswith("content-length:")), 0)
        payload = await self.reader.readexactly(length)
        return status, json.loads(payload) if payload else None

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            await self.writer.wait_closed()
        self.reader = self.writer = None


class Pool:
    """`size` connections; a request waits for a free one."""

    def __init__(self, host: str, port: int, size: int) -> None:
        self.free: asyncio.Queue[Connection] = asyncio.Queue()
        self.all = [Connection(host, port) for _ in range(size)]
        for conn in self.all:
            self.free.put_nowait(conn)

    async def request(self, method: str, path: str, body: Any, headers: dict[str, str]) -> tuple[int, Any]:
        conn = await self.free.get()
        try:
            return await conn.request(method, path, body, headers)
        except BaseException:
            await conn.close()  # a half-read response must not be read by the next request
            raise
        finally:
            self.free.put_nowait(conn)

    async def close(self) -> None:
        for conn in self.all:
            await conn.close()
