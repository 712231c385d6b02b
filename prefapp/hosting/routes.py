"""The doors of the web server itself, before any gradio route runs (an ASGI middleware; Starlette, not gradio).

gradio checks a password sign-in on its own routes, but sign-in with Hugging Face is a session cookie gradio never
asks for: without `Doorman`, a visitor who has not signed in could read `/config` and `/gradio_api/info`, join the
queue and upload files. With Hub sign-in, `Doorman` answers such a visitor with a small sign-in page at `/` and
401 everywhere else except the OAuth routes themselves (an allowlist: a route gradio adds later stays closed).
Where roles exist, uploads (only the Data tab's prompt import uses them) need an admin; every mode caps their size
(`launch_options`' `max_file_size`). It also records each request's client address for the login rate limit
(`callers.client_address`: X-Forwarded-For only from a trusted proxy). `launch_options` also mounts the light
labelling routes (`light_api`), which check their callers themselves.
"""

from __future__ import annotations

import html
import json
import logging
import os
from typing import Any

from prefapp.errors import ConfigError
from prefapp.hosting.auth import Access, Accounts, HubLogin
from prefapp.hosting.callers import TrustedProxies, account_of, client_address, hub_user_of, one_rule_for_proxies
from prefapp.hosting.light_api import API_PREFIX, LabellingService, LightApi
from prefapp.hosting.login import CLIENT_ADDRESS, LoginGuard

log = logging.getLogger(__name__)

MAX_UPLOAD_ENV = "PREFAPP_MAX_UPLOAD_MB"
DEFAULT_MAX_UPLOAD_MB = 50  # a prompt file of ~100k prompts; enough for import, too little to fill a disk quickly
OPEN_TO_VISITORS = ("/login/huggingface", "/login/callback", "/logout", "/favicon.ico", "/robots.txt",
                    "/gradio_api/startup-events")  # the last: gradio's launch() calls it once, it returns nothing
UPLOAD_ROUTES = ("/gradio_api/upload",)
LIGHT_ROUTES = (f"{API_PREFIX}/next_pair", f"{API_PREFIX}/vote")  # they check the caller themselves (plain text)

SIGN_IN_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>prefapp: sign in</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body style="font-family: sans-serif; max-width: 36em; margin: 4em auto; line-height: 1.5">
<h1>prefapp</h1>
<p>{message}</p>
<p><a href="login/huggingface" role="button" style="display: inline-block; padding: .6em 1.2em; border-radius: .4em;
background: #ffd21e; color: #000; text-decoration: none; font-weight: bold">Sign in with Hugging Face</a></p>
</body></html>
"""


def max_upload_bytes() -> int:
    """The upload size limit from PREFAPP_MAX_UPLOAD_MB (default 50)."""
    text = os.environ.get(MAX_UPLOAD_ENV, str(DEFAULT_MAX_UPLOAD_MB)).strip()
    try:
        mb = float(text)
    except ValueError:
        mb = -1.0
    if not mb > 0:
        raise ConfigError(f"{MAX_UPLOAD_ENV}={text!r} is not a positive number of megabytes: e.g. "
                          f"{MAX_UPLOAD_ENV}={DEFAULT_MAX_UPLOAD_MB}")
    return int(mb * 1024 * 1024)


def launch_options(access: Access | None, service: LabellingService | None = None) -> dict[str, Any]:
    """Keyword arguments for gradio's `launch()`: the login callable, the doorman (with the trusted proxies), the
    upload size limit and, given the service, the light labelling routes (`prefapp.hosting.light_api`)."""
    from starlette.middleware import Middleware

    trusted = TrustedProxies.from_env()
    one_rule_for_proxies()  # X-Forwarded-For is believed only as `trusted` says, not by uvicorn on its own
    guard = LoginGuard(access) if isinstance(access, Accounts) else None  # one count of failures for both doors
    app_kwargs: dict[str, Any] = {"middleware": [Middleware(Doorman, access=access, trusted=trusted)]}
    if service is not None:
        app_kwargs["routes"] = LightApi(service, access, guard).routes()  # FastAPI puts them before gradio's
    options: dict[str, Any] = {"max_file_size": max_upload_bytes(), "app_kwargs": app_kwargs}
    if guard is not None:
        options["auth"] = guard.check
        options["auth_message"] = "prefapp: sign in with the account an admin created for you."
    return options


def _route(scope: dict) -> str:
    path = scope.get("path", "/")
    root = scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root):]
    return path.rstrip("/") or "/"


class Doorman:
    """ASGI middleware: records the client address; with roles, closes gradio's routes to who may not use them."""

    def __init__(self, app: Any, access: Access | None = None, trusted: TrustedProxies = TrustedProxies()) -> None:
        self.app, self.access, self.trusted = app, access, trusted

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        token = CLIENT_ADDRESS.set(client_address(scope, self.trusted))
        try:
            refusal = self._refusal(scope)
            if refusal is None:
                await self.app(scope, receive, send)
            elif scope["type"] == "http":
                await _respond(send, *refusal)
            else:  # a websocket: close it before it is accepted
                await send({"type": "websocket.close", "code": 1008})
        finally:
            CLIENT_ADDRESS.reset(token)

    def _refusal(self, scope: dict) -> tuple[int, str, str] | None:
        """(status, content type, body) to answer instead of the app, or None to let the request through."""
        if self.access is None:
            return None
        route = _route(scope)
        if isinstance(self.access, HubLogin):
            user = hub_user_of(scope)
            if user is None and route not in OPEN_TO_VISITORS and route not in LIGHT_ROUTES:
                if route == "/" and scope.get("method", "GET") in ("GET", "HEAD"):
                    return 200, "text/html; charset=utf-8", SIGN_IN_PAGE.format(message=html.escape(
                        "Sign in with your Hugging Face account to label."))
                return 401, "application/json", json.dumps(
                    {"error": "Not signed in: open the app's page and use 'Sign in with Hugging Face'."})
        else:
            user = account_of(scope)  # gradio's own login_check refuses the rest to visitors without an account
        if route in UPLOAD_ROUTES and user is not None and not self.access.allows(user, "admin"):
            log.warning("refused an upload to %r (needs admin)", user)
            return 403, "application/json", json.dumps(
                {"error": f"Uploads need the admin role ({user} is {self.access.role(user) or 'no role'})."})
        return None


async def _respond(send: Any, status: int, content_type: str, body: str) -> None:
    data = body.encode("utf-8")
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", content_type.encode()), (b"content-length", str(len(data)).encode()),
                            (b"cache-control", b"no-store")]})
    await send({"type": "http.response.body", "body": data})
