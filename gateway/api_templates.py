"""POST /v1/templates/{name}/preview: exactly what a template would send, without sending it.

{"channel": "sms", "locale": "zh-CN", "intent": {...as POSTed to /v1/notifications...}}
-> 200 {"template", "channel", "locale", "parts", "sms": {"encoding", "segments", ...} | null}
-> 404 unknown template, 422 the template cannot be rendered for this intent (the message says why)
"""

# No `from __future__ import annotations`: FastAPI reads the route's annotations where it is defined.

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict

from channels.render import Renderer, RenderError, UnknownTemplate
from gateway.config import Settings
from rules.intent import Intent, Locale
from rules.model import Channel


class PreviewIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    channel: Channel
    locale: Locale | None = None  # default: the intent recipient's locale
    intent: Intent


def templates_router(settings: Settings) -> APIRouter:
    from gateway.api import ApiError, Auth  # here: gateway.api imports this module to include the router

    router = APIRouter()
    renderer = Renderer(settings.templates_dir)

    @router.post("/v1/templates/{name}/preview")
    def preview_template(name: str, body: PreviewIn, who: Auth) -> dict[str, Any]:
        try:
            rendered = renderer.render(name, body.channel, body.intent, None, locale=body.locale)
        except UnknownTemplate:
            raise ApiError(404, "not_found", f"unknown template {name!r}") from None
        except RenderError as exc:
            raise ApiError(422, "render_failed", str(exc)) from None
        return rendered.as_dict()

    return router
