"""The light labelling API: `POST /api/v1/next_pair` and `POST /api/v1/vote`, plain Starlette routes beside gradio's.

Why: a call through gradio's queue API costs the server 35-64 ms of CPU (two HTTP requests and an SSE stream per
call) while the vote itself costs 1-9 ms in DuckDB (less the busier the server: votes arriving together share a
transaction, prefapp.store.vote_writes). These routes call the same `PrefService` intents in one request each,
JSON in and JSON out, so a labelling client (a script, a custom front end) pays for the vote only.

The rules are the named API's: each route declares its role in `LightApi.routes` (a route without one is refused to
everyone); with accounts the user is the signed-in account, from gradio's sign-in cookie or HTTP basic auth (checked
by the same `LoginGuard` as the login page: rate-limited, one hash at a time; a password once verified is
remembered as an HMAC under a per-process key, so later calls do not hash again); with sign-in with Hugging Face
the Hub user of gradio's signed session; without either, as open as the gradio API, the annotator named in the
body. Where a user is signed in, the annotator a client sends is replaced by that user. Parameters are checked by
`prefapp.hosting.params` (refused, never coerced); a repeated vote answers "Already recorded" and changes nothing.
Errors are plain text naming the fix. Unlike gradio's API, a request a browser sends from another site's page (its
`Origin` is not this host) is refused, so no page elsewhere can vote as a signed-in annotator.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import inspect
import json
import logging
import secrets
from typing import Any, Callable, Protocol
from urllib.parse import urlsplit

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from prefapp.config import Choice
from prefapp.errors import ConfigError
from prefapp.hosting.auth import ROLES, Access, Accounts, HubLogin
from prefapp.hosting.callers import account_of, hub_user_of
from prefapp.hosting.environment import redact
from prefapp.hosting.login import LoginGuard
from prefapp.hosting.params import check_call

log = logging.getLogger(__name__)

API_PREFIX = "/api/v1"
MAX_BODY_BYTES = 64 * 1024  # a vote is ~100 bytes; anything near this is not a labelling call
ANNOTATOR_PARAM = "annotator"  # replaced by the signed-in user, whatever the client sent


class LabellingService(Protocol):
    """What these routes need of `prefapp.service.PrefService` (hosting does not import the service)."""

    def next_pair(self, annotator: str) -> Any: ...

    def vote(self, pair_id: str, choice: str, annotator: str) -> Any: ...


class Refused(Exception):
    """A request answered with a plain-text error instead of the intent's result."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}


class LightApi:
    """The light routes around one shared service, checking the caller as gradio's events do."""

    def __init__(self, service: LabellingService, access: Access | None, guard: LoginGuard | None = None) -> None:
        self.service, self.access = service, access
        self.guard = guard or (LoginGuard(access) if isinstance(access, Accounts) else None)
        self._key = secrets.token_bytes(32)  # verified basic-auth passwords are remembered under this, never stored
        self._verified: dict[str, bytes] = {}  # account name -> HMAC of its verified password (one per account)

    def routes(self) -> list[Route]:
        """Each route with who may call it."""
        return [self._route("next_pair", self.next_pair, role="annotator"),
                self._route("vote", self.vote, role="annotator")]

    # --- the intents: the named API's /next_pair and /vote, with JSON objects for results ------------------------

    def next_pair(self, annotator: str) -> dict:
        """Two new responses to the least-labelled prompt for `annotator`."""
        pair = self.service.next_pair(annotator)
        return {"pair_id": pair.pair_id, "prompt": pair.prompt, "response_a": pair.response_a,
                "response_b": pair.response_b}

    def vote(self, pair_id: str, choice: Choice, annotator: str) -> dict:
        """Record `annotator`'s choice for a pair once; a repeat answers "Already recorded" and changes nothing."""
        outcome = self.service.vote(pair_id, choice, annotator)
        return {"message": outcome.message, "recorded": outcome.recorded, "mine": outcome.counts.mine,
                "total": outcome.counts.total}

    # --- the door ------------------------------------------------------------------------------------------------

    def _route(self, name: str, intent: Callable[..., dict], role: str | None) -> Route:
        async def endpoint(request: Request) -> Response:
            try:
                return JSONResponse(await self._serve(request, name, intent, role))
            except Refused as refused:
                return PlainTextResponse(refused.message + "\n", refused.status, headers=refused.headers)
        return Route(f"{API_PREFIX}/{name}", endpoint, methods=["POST"], name=f"prefapp_{name}")

    async def _serve(self, request: Request, name: str, intent: Callable[..., dict], role: str | None) -> dict:
        if role not in ROLES:
            log.error("refused %s: the route declares no role", name)
            raise Refused(403, f"{API_PREFIX}/{name} declares no role, so it is refused to everyone: declare one "
                               "where the route is made (prefapp.hosting.light_api).")
        _refuse_other_sites(request)
        user = await self._user(request)
        if self.access is not None and not self.access.allows(user, role):
            log.warning("refused %s to %r (needs %s)", name, user, role)
            raise Refused(403, f"Your account ({user}, {self.access.role(user) or 'no role'}) may not do this: it "
                               f"needs the {role} role. Ask an admin.")
        params = await _json_body(request)
        if user is not None and ANNOTATOR_PARAM in _parameters(intent):
            params[ANNOTATOR_PARAM] = user
        args, kwargs = _checked(name, intent, params)
        try:
            return await run_in_threadpool(intent, *args, **kwargs)
        except ValueError as exc:  # ConfigError included: the caller's to fix
            raise Refused(400, redact(str(exc))) from exc

    async def _user(self, request: Request) -> str | None:
        """The signed-in user (None in open mode), or Refused(401/429)."""
        if self.access is None:
            return None
        if isinstance(self.access, HubLogin):
            user = hub_user_of(request.scope)
            if user is None:
                raise Refused(401, "Not signed in: open the app's page and use 'Sign in with Hugging Face', then "
                                   "send its session cookie.")
            return user
        user = account_of(request.scope)
        if user is not None:
            return user
        header = request.headers.get("authorization")
        if header is None:
            raise Refused(401, "Not signed in: send your account's name and password as HTTP basic auth "
                               "(curl -u NAME:PASSWORD), or gradio's sign-in cookie.",
                          {"WWW-Authenticate": 'Basic realm="prefapp"'})
        return await self._basic(header)

    async def _basic(self, header: str) -> str:
        scheme, _, encoded = header.partition(" ")
        try:
            if scheme.lower() != "basic":
                raise ValueError(scheme)
            name, colon, password = base64.b64decode(encoded.strip(), validate=True).decode("utf-8").partition(":")
        except (ValueError, binascii.Error, UnicodeDecodeError):
            colon = ""
        if not colon:
            raise Refused(401, "The Authorization header is not HTTP basic auth: send NAME:PASSWORD base64-encoded "
                               "after 'Basic ' (curl -u NAME:PASSWORD does this).",
                          {"WWW-Authenticate": 'Basic realm="prefapp"'})
        proof = hmac.new(self._key, f"{name}\0{password}".encode(), hashlib.sha256).digest()
        if hmac.compare_digest(self._verified.get(name, b""), proof):
            return name
        assert self.guard is not None  # made in __init__ whenever access is Accounts
        try:
            ok = await self.guard.check(name, password)
        except Exception as exc:  # the guard's HTTP 429 (fastapi's HTTPException): too many failures
            status, detail = getattr(exc, "status_code", None), getattr(exc, "detail", None)
            if status != 429:
                raise
            raise Refused(429, str(detail), dict(getattr(exc, "headers", None) or {})) from exc
        if not ok:
            raise Refused(401, "Wrong name or password: check them, or ask an admin to reset the account "
                               "(prefapp add-user NAME --role ROLE).", {"WWW-Authenticate": 'Basic realm="prefapp"'})
        self._verified[name] = proof
        return name


def _refuse_other_sites(request: Request) -> None:
    """A browser names the page that sent a request in `Origin`; only the app's own pages may call these routes.
    gradio's CORS lets any site call its API with the visitor's cookies on a public host: a page elsewhere must not
    cast votes as a signed-in annotator. Scripts (curl, httpx) send no Origin."""
    origin = request.headers.get("origin")
    if origin is not None and urlsplit(origin).netloc.lower() != request.headers.get("host", "").lower():
        raise Refused(403, f"Refused a request from the page at {origin}: only this app's own pages may call "
                           f"{API_PREFIX}; call it from a script instead (no Origin header).")


async def _json_body(request: Request) -> dict:
    """The request's JSON object, or Refused(400/413) naming what to send."""
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > MAX_BODY_BYTES:
        raise Refused(413, f"The body is over {MAX_BODY_BYTES // 1024} KiB: a labelling call is a small JSON object.")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise Refused(413, f"The body is over {MAX_BODY_BYTES // 1024} KiB: a labelling call is a small JSON "
                               "object.")
    try:
        params = json.loads(body or b"{}")
    except (ValueError, UnicodeDecodeError) as exc:
        raise Refused(400, f"The body is not JSON ({exc}): send a JSON object, e.g. "
                           '{"pair_id": "...", "choice": "A", "annotator": "alice"}.') from exc
    if not isinstance(params, dict):
        raise Refused(400, f"The body is JSON {type(params).__name__}, not an object: send the parameters as "
                           'a JSON object, e.g. {"annotator": "alice"}.')
    return params


def _parameters(intent: Callable[..., dict]) -> tuple[str, ...]:
    return _function_parameters(getattr(intent, "__func__", intent))[1 if hasattr(intent, "__func__") else 0:]


@functools.lru_cache(maxsize=64)
def _function_parameters(function: Callable) -> tuple[str, ...]:
    return tuple(inspect.signature(function).parameters)


def _checked(name: str, intent: Callable[..., dict], params: dict) -> tuple[tuple, dict]:
    """`params` checked against the intent's signature and type hints (prefapp.hosting.params), or Refused(400)."""
    expected = _parameters(intent)
    unknown = sorted(set(params) - set(expected))
    missing = [p for p in expected if p not in params]
    if unknown or missing:
        what = (f"unknown parameter {', '.join(map(repr, unknown))}" if unknown else
                f"missing parameter {', '.join(map(repr, missing))}")
        raise Refused(400, f"{API_PREFIX}/{name}: {what}: send a JSON object with {', '.join(expected)}.")
    try:
        return check_call(intent, (), params)
    except ConfigError as exc:
        raise Refused(400, f"{API_PREFIX}/{name}: {exc}.") from exc
