"""FCM HTTP v1 as OpenAPI 3, for Prism: converted from the discovery document in google-api-python-client.

The wheel ships `googleapiclient/discovery_cache/documents/fcm.v1.json`, Google's own description
of the API. Conversion: one path per method from its `flatPath`, path parameters from the braces,
request and 200 response from the method's `$ref`s, schemas as they are (refs rewritten). One
addition: enums also accept lowercase values, because firebase-admin sends them
(`"priority": "high"`). Error responses are added by `overlays.fcm`.

Run as a script to print the document: `python tests/contracts/fcm_openapi.py`.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import googleapiclient

_NOT_SCHEMA = ("id", "location", "required", "enumDescriptions")  # discovery keys that are no JSON Schema
DISCOVERY = Path(googleapiclient.__file__).parent / "discovery_cache/documents/fcm.v1.json"


def convert(discovery: dict[str, Any]) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for method in _methods(discovery["resources"]):
        path = "/" + method["flatPath"]
        paths.setdefault(path, {})[method["httpMethod"].lower()] = _operation(method, path)
    return {
        "openapi": "3.0.3",
        "info": {
            "title": discovery["title"],
            "version": discovery["version"],
            "x-discovery-revision": discovery["revision"],
        },
        "servers": [{"url": discovery["rootUrl"].rstrip("/")}],
        "paths": paths,
        "components": {
            "schemas": {name: _schema(s) for name, s in discovery["schemas"].items()},
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


def _methods(resources: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for resource in resources.values():
        found.extend(resource.get("methods", {}).values())
        found.extend(_methods(resource.get("resources", {})))
    return found


def _operation(method: dict[str, Any], path: str) -> dict[str, Any]:
    params = [
        {"name": n, "in": "path", "required": True, "schema": {"type": "string"}} for n in re.findall(r"{(\w+)}", path)
    ]
    for name, p in method.get("parameters", {}).items():
        if p["location"] == "query":
            params.append({"name": name, "in": "query", "required": bool(p.get("required")), "schema": _schema(p)})
    op: dict[str, Any] = {
        "operationId": method["id"],
        "description": method.get("description", ""),
        "parameters": params,
        "responses": {"200": _json_response("Successful response", method.get("response", {}).get("$ref", "Empty"))},
        "security": [{"bearer": []}],
    }
    if "request" in method:
        op["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": _ref(method["request"]["$ref"])}},
        }
    return op


def _schema(node: dict[str, Any]) -> dict[str, Any]:
    """One discovery schema as an OpenAPI schema (refs rewritten, `type: any` dropped)."""
    if "$ref" in node:
        return _ref(node["$ref"])
    out = {k: v for k, v in node.items() if k not in _NOT_SCHEMA and not (k == "type" and v == "any")}
    if "properties" in out:
        out["properties"] = {name: _schema(p) for name, p in out["properties"].items()}
    for key in ("items", "additionalProperties"):
        if isinstance(out.get(key), dict):
            out[key] = _schema(out[key])
    if "enum" in out:  # addition: firebase-admin sends lowercase enum values
        out["enum"] = list(dict.fromkeys([*out["enum"], *(e.lower() for e in out["enum"])]))
    return out


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json_response(description: str, schema: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(schema)}}}


if __name__ == "__main__":
    json.dump(convert(json.loads(DISCOVERY.read_text(encoding="utf-8"))), sys.stdout, indent=1)
