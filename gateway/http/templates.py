"""POST /v1/templates/{name}/preview: exactly what a template would send, without sending it.

{"channel": "sms", "locale": "zh-CN", "intent": {...as POSTed to /v1/notifications...}}
-> 200 {"template", "channel", "locale", "parts", "sms": {"encoding", "segments", ...} | null}
-> 404 unknown template, 422 the template cannot be rendered for this intent (the message says why)
"""

# No `from __future__ import annotations`: FastAPI reads the route's annotations where it is defined.

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Path
from pydantic import BaseModel, ConfigDict

from channels.rendering.render import Renderer, RenderError, UnknownTemplate
from gateway.http.auth import Previewer
from gateway.http.errors import ApiError
from gateway.http.openapi import error_responses
from rules.intent import EXAMPLE, Intent, Locale
from rules.model import Channel


class PreviewIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"channel": "sms", "intent": EXAMPLE}]})

    channel: Channel
    locale: Locale | None = None  # default: the intent recipient's locale
    intent: Intent


@dataclass(frozen=True)
class TemplatesApi:
    renderer: Renderer  # its own, re-reading changed template files (the workers' have their own)

    def router(self) -> APIRouter:
        router = APIRouter()
        router.add_api_route(
            "/v1/templates/{name}/preview", self.preview_template, methods=["POST"], responses=error_responses(404)
        )
        return router

    def preview_template(
        self, name: Annotated[str, Path(max_length=128, examples=["inquiry-new"])], body: PreviewIn, who: Previewer
    ) -> dict[str, Any]:
        try:
            rendered = self.renderer.render(name, body.channel, body.intent, None, locale=body.locale)
        except UnknownTemplate:
            raise ApiError(404, "not_found", f"unknown template {name!r}") from None
        except RenderError as exc:
            raise ApiError(422, "render_failed", str(exc)) from None
        return rendered.as_dict()
