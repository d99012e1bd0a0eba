"""Errors FastAPI and Starlette raise themselves, answered in Parley's one error shape (docs/api.md).

* A parameter or body that fails validation: 422 `validation_failed`, one `detail` entry per problem.
  A body that is not JSON at all is a problem of `(body)`, with the line and column where parsing
  stopped (FastAPI reports the character offset under a path of its own).
* A body FastAPI could not read (not UTF-8) or a form that does not parse: FastAPI and Starlette answer
  400; here it is the same 422 of `(body)`, so a client handles one status for every bad body.
* An unknown path is 404 `not_found`; a known path with another method is 405 `method_not_allowed` with
  `Allow` listing the methods of every route on the path (Starlette names the first route's only).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from rules.problems import field_problem

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def install(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return validation_failed([_problem(e, exc.body) for e in exc.errors()])

    # Starlette's class, not FastAPI's subclass: unknown routes and methods raise the former.
    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400:
            return validation_failed([{"path": "(body)", "message": _unreadable(exc)}])
        if exc.status_code == 405:
            allowed = {"Allow": ", ".join(sorted(_methods(request)))}
            return JSONResponse({"error": "method_not_allowed", "message": str(exc.detail)}, 405, headers=allowed)
        error = {404: "not_found"}.get(exc.status_code, "http_error")
        return JSONResponse({"error": error, "message": str(exc.detail)}, status_code=exc.status_code)


def validation_failed(detail: list[dict[str, str]]) -> JSONResponse:
    message = "; ".join(f"{d['path']}: {d['message']}" for d in detail)
    return JSONResponse({"error": "validation_failed", "message": message, "detail": detail}, status_code=422)


def _problem(error: dict[str, Any], body: Any) -> dict[str, str]:
    if error["type"] == "json_invalid" and len(error["loc"]) == 2 and isinstance(body, str):
        offset = int(error["loc"][1])
        line, column = body.count("\n", 0, offset) + 1, offset - body.rfind("\n", 0, offset)
        reason = error.get("ctx", {}).get("error", "not JSON")
        return {"path": "(body)", "message": f"Invalid JSON: {reason} at line {line} column {column}"}
    return field_problem({**error, "loc": tuple(x for x in error["loc"] if x != "body")})


def _unreadable(exc: StarletteHTTPException) -> str:
    cause = exc.__cause__
    if isinstance(cause, UnicodeDecodeError):
        return f"the body is not valid UTF-8 (at byte {cause.start})"
    return f"the body could not be parsed: {cause or exc.detail}"


def _methods(request: Request) -> set[str]:
    # Each method is tried against every route, included routers too (they match for their own routes):
    # only BaseRoute.matches is used, not the router's internals.
    routes = request.app.router.routes
    return {
        method
        for method in METHODS
        if any(route.matches({**request.scope, "method": method})[0] is Match.FULL for route in routes)
    }
