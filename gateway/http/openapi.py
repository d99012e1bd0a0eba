"""The published OpenAPI document: every answer the server can give, in the shape it gives it.

FastAPI documents what a route declares. What every route shares is added here, from the path alone,
so a route added later is documented too: /v1 routes need a key (401), its role (403) and stay within
rate limits (429 with Retry-After); every route refuses an over-large body (413, gateway.http.bodylimit); a
route with parameters or a body refuses invalid ones (422) and, for a body, other media types than JSON
(415, gateway.http.jsonbody). Each of those errors, and FastAPI's own 422, is documented as `ErrorBody`:
Parley's one error shape. Every /v1 and webhook route may answer 503 while Redis is unavailable.
Errors only some routes give (404, 409, 502) are declared at the route with `error_responses(...)`. tests/security/test_openapi_conformance.py holds the server to this document.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema, models_json_schema

from rules.intent import Intent

REF = "#/components/schemas/{model}"
ERROR_REF = {"$ref": REF.format(model="ErrorBody")}
WHEN: dict[int, str] = {
    401: "`unauthorized`: no key, a key no tenant has, or an expired key",
    403: "`forbidden`: the key lacks the role this call needs (or, for a webhook, the signature is bad)",
    404: "`not_found`: nothing of that id for this tenant",
    409: "a conflict with what is stored: the `error` code says which",
    413: "`payload_too_large`: the body is over server.max_body_bytes (webhooks: server.max_webhook_bytes)",
    415: "`unsupported_media_type`: a body that is not `application/json` (or `application/*+json`)",
    422: "`validation_failed` (one `detail` entry per problem, with its path), or a route's own code",
    429: "`rate_limited`: over a rate limit; Retry-After says in how many seconds to try again",
    502: "a provider refused or failed the request",
    503: "`store_unavailable`: Redis cannot be reached, nothing was done (Retry-After says when to try again); "
    "or `not_replicated` (a stop, with redis.wait_replicas): recorded, but not confirmed by enough Redis replicas "
    "in time, retry after Retry-After; or `rules_unavailable`: no valid rules are loaded",
}
HEADERS: dict[int, dict[str, Any]] = {
    401: {"WWW-Authenticate": {"required": True, "schema": {"type": "string", "enum": ["Bearer"]}}},
    429: {"Retry-After": {"required": True, "description": "seconds", "schema": {"type": "integer", "minimum": 0}}},
    503: {
        "Retry-After": {
            "required": False,
            "description": "seconds (store_unavailable, not_replicated)",
            "schema": {"type": "integer", "minimum": 0},
        }
    },
}


class Problem(BaseModel):
    path: str = Field(description="the field (`recipient.phone`, `query.limit`, `header.content-type`) or `(body)`")
    message: str


class RulesProblem(BaseModel):
    file: str
    line: int
    column: int
    path: str
    message: str


class ErrorBody(BaseModel):
    """Every error: a stable `error` code, a `message` for people, and for validation errors `detail`.
    Some codes carry more fields, listed here; clients should ignore fields they do not know."""

    model_config = ConfigDict(extra="allow")

    error: str = Field(description="the code, e.g. `validation_failed` (docs/api.md lists them all)")
    message: str
    detail: list[Problem] | SkipJsonSchema[None] = Field(None, description="one entry per problem found")
    id: str | SkipJsonSchema[None] = Field(None, description="`idempotency_conflict`: the key's notification")
    problems: list[RulesProblem] | SkipJsonSchema[None] = Field(None, description="`rules_invalid`")
    messages: list[str] | SkipJsonSchema[None] = Field(None, description="`rules_invalid`, as printed lines")
    numbers: list[str] | SkipJsonSchema[None] = Field(None, description="`number_taken`: the numbers in use")
    needed: int | SkipJsonSchema[None] = Field(None, description="`pool_exhausted`: the pool size needed")
    available: int | SkipJsonSchema[None] = Field(None, description="`pool_exhausted`: the numbers free")


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """A route's `responses=` for the errors only it gives, e.g. `error_responses(404, 409)`."""
    return {code: {"model": ErrorBody, "description": WHEN[code]} for code in codes}


def install(app: FastAPI) -> None:
    def schema() -> dict[str, Any]:
        if app.openapi_schema is None:
            generated = get_openapi(title=app.title, version=app.version, description=app.description,
                                    openapi_version=app.openapi_version, routes=app.routes,
                                    separate_input_output_schemas=app.separate_input_output_schemas)  # fmt: skip
            app.openapi_schema = document(generated)
        return app.openapi_schema

    app.openapi = schema  # type: ignore[method-assign]


def document(schema: dict[str, Any]) -> dict[str, Any]:
    components = schema.setdefault("components", {})
    models = components.setdefault("schemas", {})
    for name, model in _models().items():
        models.setdefault(name, model)
    for name in ("HTTPValidationError", "ValidationError"):  # FastAPI's 422 shape, which Parley never sends
        models.pop(name, None)
    components["securitySchemes"] = {
        "bearer": {"type": "http", "scheme": "bearer", "description": "a tenant's API key"}
    }
    for path, item in schema.get("paths", {}).items():
        for method, operation in item.items():
            _document(path, method, operation)
    return schema


def _document(path: str, method: str, operation: dict[str, Any]) -> None:
    parameters = operation.get("parameters", [])
    # The key is documented as the security scheme; a header parameter would be generated by tools as data.
    kept = [p for p in parameters if not (p["in"] == "header" and p["name"].lower() == "authorization")]
    if kept:
        operation["parameters"] = kept
    else:
        operation.pop("parameters", None)
    codes = {413}
    if path.startswith("/v1/"):
        operation["security"] = [{"bearer": []}]
        codes |= {401, 403, 429}
    if path.startswith(("/v1/", "/webhooks/")):
        codes.add(503)  # every one of them reads or writes Redis (store_unavailable)
    if path.startswith("/webhooks/"):
        codes |= {403, 422}  # a bad signature; a form that does not parse
    if kept or "requestBody" in operation:
        codes.add(422)
    if path.startswith("/v1/") and method in ("post", "put", "patch"):
        codes |= {415, 422}  # gateway.http.jsonbody checks any body sent, even to a route that reads none
    responses = operation.setdefault("responses", {})
    if "HTTPValidationError" in str(responses.get("422")):  # FastAPI's 422, also where only the key was checked
        del responses["422"]
    for code in codes:
        responses.setdefault(str(code), _error_response(code))


def _error_response(code: int) -> dict[str, Any]:
    response: dict[str, Any] = {"description": WHEN[code], "content": {"application/json": {"schema": ERROR_REF}}}
    if code in HEADERS:
        response["headers"] = HEADERS[code]
    return response


def _models() -> dict[str, Any]:
    _, schema = models_json_schema([(ErrorBody, "serialization"), (Intent, "validation")], ref_template=REF)
    return dict(schema.get("$defs", {}))
