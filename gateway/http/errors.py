"""The one error shape of the API: `{"error": code, "message": text, ...}` (docs/api.md has the table)."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    def __init__(self, status: int, error: str, message: str, **extra: Any) -> None:
        self.status, self.error, self.message, self.extra = status, error, message, extra
