"""Who may trigger what, declared where each event is wired and enforced on the server for every event.

Every event of the app is registered through `on(trigger, fn, ..., role=...)` (or `api(fn, role=..., ...)` for a
named endpoint), which records the role on gradio's BlockFunction at the point of registration: PUBLIC (anyone
who has the page), ANNOTATOR or ADMIN. `guard_events` then wraps the function of every registered event, so the
role is checked no matter how the event is reached: a hidden tab's button called from the browser console or
`gradio_client` meets the same check as a click. An event registered without a declared role (a plain
`button.click(fn)`) is refused to everyone, with or without accounts: a forgotten declaration fails closed.

With accounts on, the annotator a handler receives (the name textbox among its inputs, or a parameter named
`annotator`) is replaced by the signed-in user (`gr.Request.username`), so a vote can never be attributed to a name
the client sent. With sign-in with Hugging Face (a Space with `hf_oauth: true`) the user is the Hub user name
gradio's OAuth keeps in the signed session cookie. Without either, every declared event is open to everyone.
"""

import functools
import inspect
import logging
import time
from typing import Any, Callable, Literal

import gradio as gr
from gradio.context import Context, LocalContext

from prefapp.hosting.auth import Access, HubLogin

log = logging.getLogger(__name__)

Role = Literal["public", "annotator", "admin"]
PUBLIC: Role = "public"  # says who is signed in, or how to sign in
ANNOTATOR: Role = "annotator"  # labelling and chatting, and the read-only refreshes they need
ADMIN: Role = "admin"  # data, training, quality, and shared settings that change the app for everyone
ROLE_ATTR = "prefapp_role"  # set on gradio's BlockFunction by `declare`
QUIET_EVENTS = ("tick", "load", "then", "success")  # refused without an error toast: nobody clicked anything
ANNOTATOR_PARAM = "annotator"  # a handler parameter that names who acts


def declare(dependency: dict, role: Role, blocks: gr.Blocks | None = None) -> dict:
    """Record `role` on the event gradio just registered (`dependency` is what the listener returned)."""
    if role not in (PUBLIC, ANNOTATOR, ADMIN):
        raise ValueError(f"role {role!r}: use PUBLIC, ANNOTATOR or ADMIN")
    root = blocks or Context.root_block
    setattr(root.fns[dependency["id"]], ROLE_ATTR, role)
    return dependency


def on(trigger: Any, fn: Callable | None, inputs: Any = None, outputs: Any = None, *, role: Role, **kwargs: Any
       ) -> Any:
    """Wire `fn` to `trigger` (a listener such as `button.click`, `blocks.load`, `dep.then`, `timer.tick`, or a
    list of them as for `gr.on`) and declare who may trigger it. Returns gradio's Dependency, for `.then`."""
    if isinstance(trigger, (list, tuple)):
        dependency = gr.on(list(trigger), fn, inputs, outputs, **kwargs)
    else:
        dependency = trigger(fn, inputs, outputs, **kwargs)
    return declare(dependency, role)


def api(fn: Callable, *, role: Role, **kwargs: Any) -> Any:
    """A named API endpoint (`gr.api`) with its role."""
    return declare(gr.api(fn, **kwargs), role)


def page_load() -> Any:
    """The load listener of the Blocks being built (a page opened), for a tab's `events()`."""
    return Context.root_block.load


def role_of(block_fn: Any) -> Role | None:
    return getattr(block_fn, ROLE_ATTR, None)


def current_user() -> str | None:
    """The signed-in user of the event being processed: an account's name, or a Hub user name; None if neither."""
    request = LocalContext.request.get(None)
    return getattr(request, "username", None) or hub_user(request)


def hub_user(request: Any) -> str | None:
    """The Hub user name of a sign-in with Hugging Face, from the session gradio's OAuth routes keep signed."""
    underlying = getattr(request, "request", None) or request
    scope = getattr(underlying, "scope", None)  # `.session` itself asserts when no session middleware is installed
    session = scope.get("session") if isinstance(scope, dict) else getattr(underlying, "session", None)
    info = (session or {}).get("oauth_info") or {}
    if info.get("expires_at") is not None and info["expires_at"] < time.time():
        return None
    return (info.get("userinfo") or {}).get("preferred_username")


def handler_name(fn: Callable) -> str:
    """For log lines and tests only: no role depends on a name."""
    while isinstance(fn, functools.partial) or hasattr(fn, "__wrapped__"):
        fn = fn.func if isinstance(fn, functools.partial) else fn.__wrapped__
    return getattr(fn, "__qualname__", None) or getattr(fn, "__name__", repr(fn))


def _annotator_slots(block_fn: Any, annotator_box: Any) -> list[int]:
    """Positions of the annotator in the handler's arguments: the name textbox, or an `annotator` parameter."""
    slots = [i for i, c in enumerate(block_fn.inputs) if annotator_box is not None and c is annotator_box]
    if slots:
        return slots
    params = list(inspect.signature(block_fn.fn).parameters)
    return [params.index(ANNOTATOR_PARAM)] if ANNOTATOR_PARAM in params else []


def _authorize(accounts: Access, role: Role, name: str, slots: list[int], args: tuple) -> tuple | None:
    """The handler's arguments with the signed-in user as annotator, or None when the user's role is too low."""
    user = current_user()
    if not accounts.allows(user, role):
        log.warning("refused %s to %r (needs %s)", name, user, role)
        return None
    args = list(args)
    for i in slots:
        if i < len(args):
            args[i] = user  # the signed-in user, whatever the client sent
    return tuple(args)


def _refuse(accounts: Access, role: Role, quiet: bool) -> Any:
    if quiet:  # e.g. training progress ticking on an annotator's page: no update, no error toast
        return gr.skip()
    user = current_user()
    if user is None:
        how = "use 'Sign in with Hugging Face' at the top of the page" if isinstance(accounts, HubLogin) else \
            "reload the page and sign in"
        raise gr.Error(f"You are not signed in: {how}.", print_exception=False)
    raise gr.Error(f"Your account ({user}, {accounts.role(user) or 'no role'}) may not do this: it needs the {role} "
                   "role. Ask an admin.", print_exception=False)


def _same_shape(fn: Callable, body: Callable[[tuple, dict], Any]) -> Callable:
    """A wrapper around `fn` that runs `body(args, kwargs)`; a generator stays a generator (gradio checks)."""
    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def gen_wrapper(*args: Any, **kwargs: Any) -> Any:
            yield from body(args, kwargs)
        return gen_wrapper

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return body(args, kwargs)
    return wrapper


def _guarded(fn: Callable, accounts: Access, role: Role, slots: list[int], quiet: bool) -> Callable:
    name, generator = handler_name(fn), inspect.isgeneratorfunction(fn)

    def body(args: tuple, kwargs: dict) -> Any:
        allowed = _authorize(accounts, role, name, slots, args)
        if allowed is None:
            refusal = _refuse(accounts, role, quiet)
            return iter([refusal]) if generator else refusal
        return fn(*allowed, **kwargs)
    return _same_shape(fn, body)


def _undeclared(fn: Callable) -> Callable:
    name = handler_name(fn)

    def body(args: tuple, kwargs: dict) -> Any:
        log.error("refused %s: the event declares no role", name)
        raise gr.Error("This event declares no role, so it is refused to everyone: declare one where it is wired "
                       "(prefapp.ui.access.on).", print_exception=False)
    return _same_shape(fn, body)


def guard_events(blocks: gr.Blocks, accounts: Access | None, annotator_box: Any = None) -> dict[int, Role | None]:
    """Enforce the declared role of every registered event of `blocks`; returns {event id: role or None}.

    Undeclared events are refused to everyone; without accounts the declared ones are open to everyone."""
    roles: dict[int, Role | None] = {}
    for fn_id, block_fn in blocks.fns.items():
        if block_fn.fn is None:  # a front-end-only event runs no Python
            continue
        role = roles[fn_id] = role_of(block_fn)
        if role is None:
            block_fn.fn = _undeclared(block_fn.fn)
        elif accounts is not None and role != PUBLIC:
            # A periodic refresh, a page load, or a step chained to an event that ran: refused without a toast.
            quiet = any(event in QUIET_EVENTS for _, event in block_fn.targets)
            block_fn.fn = _guarded(block_fn.fn, accounts, role, _annotator_slots(block_fn, annotator_box), quiet)
    return roles
