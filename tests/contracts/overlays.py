"""Error responses the published contracts leave out, added so Prism can answer them.

Twilio's OpenAPI files describe only the success of `Messages.json` and `Calls.json`; Slack's
describes one generic error; FCM's discovery document describes no error at all. Each provider
documents its error envelope elsewhere (twilio.com/docs/api/errors, api.slack.com/apis/rate-limits,
firebase.google.com/docs/reference/fcm/rest/v1/ErrorCode); these overlays add exactly those
envelopes as named examples, marked `x-parley-overlay`, without touching the request schemas
Prism validates against. A test picks one with `__code=400&__example=opted_out` (or the
`Prefer: code=400, example=opted_out` header).

Prism answers a request that breaks the contract with the operation's 422 response, else its
400, else its default. So that such a request is never mistaken for a provider error we added,
each overlaid operation also gets a 422 saying "breaks the published contract" (Prism lists
the violations in its `sl-violations` response header).
"""

from __future__ import annotations

import copy
from typing import Any

Examples = dict[str, dict[str, Any]]

TWILIO_ERRORS: dict[int, Examples] = {
    400: {
        "invalid_to": {"code": 21211, "message": "Invalid 'To' Phone Number"},
        "opted_out": {"code": 21610, "message": "Attempt to send to unsubscribed recipient"},
        "not_mobile": {"code": 21614, "message": "'To' number is not a valid mobile number"},
        "region": {"code": 21408, "message": "Permission to send an SMS has not been enabled for the region"},
    },
    401: {"auth": {"code": 20003, "message": "Authenticate"}},
    429: {"too_many": {"code": 20429, "message": "Too Many Requests"}},
    500: {"internal": {"code": 20500, "message": "Internal Server Error"}},
    503: {"unavailable": {"code": 20503, "message": "Service Unavailable"}},
}

SLACK_ERRORS: dict[int, Examples] = {
    429: {"ratelimited": {"ok": False, "error": "ratelimited"}},
    500: {"internal": {"ok": False, "error": "internal_error"}},
}
# Slack reports most failures as HTTP 200 with ok=false: these become examples of the 200 response
SLACK_OK_FALSE = ("channel_not_found", "not_in_channel", "is_archived", "invalid_auth", "msg_too_long")

FCM_ERRORS: dict[int, list[tuple[str, str, str]]] = {  # status -> [(FcmError code, rpc status, message)]
    400: [("INVALID_ARGUMENT", "INVALID_ARGUMENT", "The registration token is not a valid FCM registration token")],
    403: [("SENDER_ID_MISMATCH", "PERMISSION_DENIED", "SenderId mismatch")],
    404: [("UNREGISTERED", "NOT_FOUND", "Requested entity was not found.")],
    429: [("QUOTA_EXCEEDED", "RESOURCE_EXHAUSTED", "Quota exceeded for sending messages")],
    500: [("INTERNAL", "INTERNAL", "Internal error encountered.")],
    503: [("UNAVAILABLE", "UNAVAILABLE", "The service is currently unavailable.")],
}
VIOLATION = "request breaks the published contract (Prism: see the sl-violations header)"
RETRY_AFTER = 7  # seconds, in every overlaid 429/503 (the `Retry-After` header)
# firebase-admin itself waits out a Retry-After up to 4 times before it gives up: keep FCM's short
FCM_RETRY_AFTER = 1


def twilio(spec: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(spec)
    for resource in ("Messages", "Calls"):
        op = out["paths"][f"/2010-04-01/Accounts/{{AccountSid}}/{resource}.json"]["post"]
        for status, examples in TWILIO_ERRORS.items():
            bodies = {
                name: {**e, "more_info": f"https://www.twilio.com/docs/errors/{e['code']}", "status": status}
                for name, e in examples.items()
            }
            op["responses"][str(status)] = _response(status, bodies)
        op["responses"]["422"] = _response(422, {"violation": {"message": VIOLATION, "status": 422}})
    return out


def slack(spec: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(spec)
    for path in ("/chat.postMessage", "/conversations.open"):
        op = out["paths"][path]["post"]
        ok_false = {e: {"value": {"ok": False, "error": e}} for e in SLACK_OK_FALSE}
        op["responses"]["200"]["content"]["application/json"]["examples"].update(ok_false)
        for status, examples in SLACK_ERRORS.items():
            op["responses"][str(status)] = _response(status, examples)
        op["responses"]["422"] = _response(422, {"violation": {"ok": False, "error": "invalid_arguments"}})
    return out


def fcm(spec: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(spec)
    op = out["paths"]["/v1/projects/{projectsId}/messages:send"]["post"]
    for status, errors in FCM_ERRORS.items():
        bodies = {
            code: {"error": {"code": status, "message": message, "status": rpc, "details": [_fcm_detail(code)]}}
            for code, rpc, message in errors
        }
        op["responses"][str(status)] = _response(status, bodies, FCM_RETRY_AFTER)
    violation = {"error": {"code": 422, "message": VIOLATION, "status": "INVALID_ARGUMENT"}}
    op["responses"]["422"] = _response(422, {"violation": violation})
    return out


def _fcm_detail(code: str) -> dict[str, str]:
    return {"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": code}


def _response(status: int, bodies: Examples, wait: int = RETRY_AFTER) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": "x-parley-overlay: the provider's documented error envelope",
        "content": {
            "application/json": {"schema": {"type": "object"}, "examples": {n: {"value": b} for n, b in bodies.items()}}
        },
    }
    if status in (429, 503):
        response["headers"] = {"Retry-After": {"schema": {"type": "integer"}, "example": wait}}
    return response
