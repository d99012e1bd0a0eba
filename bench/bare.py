"""The ingest baseline: a bare FastAPI endpoint that only parses the JSON body, run like `parley serve` runs.

python -m bench.bare --port 8099
"""

from __future__ import annotations

import argparse
import json

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse


def create_app() -> FastAPI:
    app = FastAPI(title="bare")

    @app.post("/v1/notifications", status_code=202)
    async def create(request: Request) -> JSONResponse:
        body = json.loads(await request.body())
        return JSONResponse({"id": "n_bare", "status": "active", "event": body.get("event")}, status_code=202)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.bare")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    # The same call as gateway.cli.run._serve: one process, uvicorn's defaults, info logging.
    uvicorn.run(create_app(), host=args.host, port=args.port, log_level="info", loop="asyncio")


if __name__ == "__main__":
    main()
