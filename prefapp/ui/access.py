"""Who may do what in the app, enforced on the server for every event and every named API endpoint.

`guard_events` wraps the function of every event the app registered (button clicks, loads, timers and the
`gr.api` endpoints alike), so a role is checked no matter how the event is reached: a hidden tab's button
called from the browser console or `gradio_client` meets the same check as a click. With accounts on, the
annotator name a handler receives is replaced by the signed-in user (`gr.Request.username`), so a vote can
never be attributed to a name the client sent. With sign-in with Hugging Face (a Space with `hf_oauth: true`) the
user is the Hub user name gradio's OAuth keeps in the signed session cookie. Without either, everyone may do
everything (the header says so).

Roles per handler: names in ANNOTATOR_HANDLERS are open to annotators, names in ADMIN_HANDLERS need an admin;
any other handler (a new one, say) is open to annotators only when all its triggers sit in the Label or Chat
tab, and needs an admin otherwise: a forgotten entry fails closed.

Also here: the header's access line, the Space storage warning with its one-click export, and the backup button.
"""

import functools
import inspect
import logging
import time
from typing import Any, Callable

import gradio as gr
from gradio.context import LocalContext

from prefapp.hosting.auth import Access, HubLogin
from prefapp.hosting.environment import access_text, storage_warning

log = logging.getLogger(__name__)

ANNOTATOR_HANDLERS = {  # labelling and chatting, and the read-only page refreshes they need
    "_on_load", "_on_annotator", "_on_next_pair", "_on_vote", "_on_undo", "_on_chat", "_on_clear_chat", "_on_chat_tab",
    "api_next_pair", "api_vote", "api_undo", "api_chat",
}
PUBLIC_HANDLERS = {  # say who is signed in, or how to sign in: they run for anyone who has the page
    "_on_access_load", "_check_login_status",  # the latter is gradio's LoginButton showing "Logout (name)"
}
ADMIN_HANDLERS = {  # shared settings that sit in annotator tabs but change the app for everyone
    "_on_sampling", "_on_generator", "_on_pick_aligned", "_on_backup", "_on_rescue_export",
    "api_export", "api_train", "api_train_status", "api_set_generator", "api_add_prompts", "api_import_prompts",
    "api_quality",
}
QUIET_EVENTS = ("tick", "load", "then", "success")
ANNOTATOR_PARAM = "annotator"  # the handler parameter that names who acts


def handler_name(fn: Callable) -> str:
    while isinstance(fn, functools.partial):
        fn = fn.func
    return getattr(fn, "__name__", repr(fn))


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


def _in_tabs(block: Any, tabs: tuple) -> bool:
    while block is not None:
        if any(block is tab for tab in tabs):
            return True
        block = getattr(block, "parent", None)
    return False


def needed_role(ui: Any, block_fn: Any) -> str:
    name = handler_name(block_fn.fn)
    if name in ADMIN_HANDLERS:
        return "admin"
    if name in ANNOTATOR_HANDLERS:
        return "annotator"
    blocks = [ui.blocks.blocks.get(target_id) for target_id, _ in block_fn.targets]
    if blocks and all(_in_tabs(b, (ui.label_tab, ui.chat_tab)) for b in blocks):
        return "annotator"
    return "admin"


def _annotator_slots(ui: Any, block_fn: Any) -> list[int]:
    """Positions of the annotator in the handler's arguments: the name textbox, or an `annotator` parameter."""
    slots = [i for i, c in enumerate(block_fn.inputs) if c is ui.annotator]
    if slots:
        return slots
    params = list(inspect.signature(block_fn.fn).parameters)
    return [params.index(ANNOTATOR_PARAM)] if ANNOTATOR_PARAM in params else []


def _authorize(accounts: Access, role: str, name: str, slots: list[int], args: tuple) -> tuple | None:
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


def _refuse(accounts: Access, role: str, quiet: bool) -> Any:
    if quiet:  # e.g. training progress ticking on an annotator's page: no update, no error toast
        return gr.skip()
    user = current_user()
    if user is None:
        how = "use 'Sign in with Hugging Face' at the top of the page" if isinstance(accounts, HubLogin) else \
            "reload the page and sign in"
        raise gr.Error(f"You are not signed in: {how}.", print_exception=False)
    raise gr.Error(f"Your account ({user}, {accounts.role(user) or 'no role'}) may not do this: it needs the {role} "
                   "role. Ask an admin.", print_exception=False)


def _guarded(fn: Callable, accounts: Access, role: str, slots: list[int], quiet: bool) -> Callable:
    name = handler_name(fn)
    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def gen_wrapper(*args: Any, **kwargs: Any) -> Any:
            allowed = _authorize(accounts, role, name, slots, args)
            if allowed is None:
                yield _refuse(accounts, role, quiet)
                return
            yield from fn(*allowed, **kwargs)
        return gen_wrapper

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        allowed = _authorize(accounts, role, name, slots, args)
        return _refuse(accounts, role, quiet) if allowed is None else fn(*allowed, **kwargs)
    return wrapper


def guard_events(ui: Any, accounts: Access | None) -> dict[str, str]:
    """Check roles on every registered event of `ui.blocks`; returns {handler: role} (empty without accounts)."""
    roles: dict[str, str] = {}
    if accounts is None:
        return roles
    for block_fn in ui.blocks.fns.values():
        if block_fn.fn is None:  # a front-end-only event runs no Python
            continue
        if handler_name(block_fn.fn) in PUBLIC_HANDLERS:
            roles[handler_name(block_fn.fn)] = "anyone"
            continue
        role, slots = needed_role(ui, block_fn), _annotator_slots(ui, block_fn)
        # A periodic refresh, a page load, or a step chained to an event that ran: refused without an error toast.
        quiet = any(event in QUIET_EVENTS for _, event in block_fn.targets)
        roles[handler_name(block_fn.fn)] = role
        block_fn.fn = _guarded(block_fn.fn, accounts, role, slots, quiet)
    return roles


# --- the header's access panel ---------------------------------------------------------------------------------


def render_access(ui: Any, accounts: Access | None) -> None:
    """The access line, the storage warning with a one-click export, and (for admins) the backup button."""
    config = ui.service.config
    summary = accounts.summary() if accounts else None
    if accounts is not None:
        gr.HTML("", js_on_load=HIDE_DISABLED_TABS_JS, elem_id="access-tabs", padding=False)
    with gr.Row():
        ui.access = gr.Textbox(label="Access", value=access_text(config.host, summary), interactive=False, max_lines=1,
                               scale=4)
        if isinstance(accounts, HubLogin):  # gradio adds its OAuth routes (/login/huggingface) for this button
            ui.login = gr.LoginButton(scale=1)
    warning = storage_warning(config.data_dir)
    with gr.Accordion("Data safety", open=warning is not None, visible=True) as ui.safety:
        if warning:
            gr.Textbox(label="Storage warning", value=warning, interactive=False, elem_id="storage-warning")
            with gr.Row():
                ui.rescue_repo = gr.Textbox(label="Hub dataset repo to push to (optional; needs HF_TOKEN)",
                                            placeholder="user/my-prefs", scale=3)
                ui.rescue_button = gr.Button("Export now (and push)", variant="stop", scale=1)
        ui.backup_button = gr.Button("Back up the database now (a consistent copy while the app runs)")
        ui.safety_result = gr.Textbox(label="Backup or export result", interactive=False, lines=2)


def setup_access_events(ui: Any, accounts: Access | None) -> None:
    """Wire the access panel; with accounts, fill in the signed-in name and hide admin tabs from annotators."""
    private = dict(api_visibility="private")
    ui.backup_button.click(functools.partial(_on_backup, ui), None, [ui.safety_result], **private)
    if hasattr(ui, "rescue_button"):
        ui.rescue_button.click(functools.partial(_on_rescue_export, ui), [ui.rescue_repo], [ui.safety_result],
                               **private)
    if accounts is None:
        return
    ui.annotator.interactive = False  # the signed-in name; the server ignores any other value anyway
    outputs = [ui.annotator, ui.access, *admin_tabs(ui), ui.safety, ui.apply_sampling, ui.use_aligned, ui.use_base]
    # Then what typing a name and pressing Enter does: the same handler, inputs and outputs as that event.
    on_name = next(f for f in ui.blocks.fns.values() if f.fn is not None and handler_name(f.fn) == "_on_annotator")
    ui.blocks.load(functools.partial(_on_access_load, ui, accounts), None, outputs, **private).then(
        on_name.fn, on_name.inputs, on_name.outputs, **private)


def _on_access_load(ui: Any, accounts: Access) -> dict:
    user = current_user()
    admin = accounts.allows(user, "admin")
    return {ui.annotator: user or "", ui.access: signed_in_text(accounts, user),
            **{tab: gr.Tab(visible=admin, interactive=admin) for tab in admin_tabs(ui)},
            **{c: gr.update(visible=admin) for c in (ui.safety, ui.apply_sampling, ui.use_aligned, ui.use_base)}}


def signed_in_text(accounts: Access, user: str | None) -> str:
    role = accounts.role(user)
    if user is None:
        return "Not signed in: use the 'Sign in with Hugging Face' button to label." if isinstance(
            accounts, HubLogin) else "Not signed in: reload the page and sign in."
    if role is None:
        return (f"Signed in as {user}, who has no role here: ask an admin to add your Hub name to "
                "PREFAPP_HF_ANNOTATORS.") if isinstance(accounts, HubLogin) else f"Signed in as {user} (no role)."
    return f"Signed in as {user} ({role})."


# gradio 6.31 applies `interactive` updates to a Tab but ignores `visible` ones: the admin tabs are disabled for
# an annotator, and this rule takes disabled tabs off the tab bar. Cosmetic: the server refuses their events anyway.
HIDE_DISABLED_TABS_JS = """
if (!document.getElementById('prefapp-hide-disabled-tabs')) {
  const style = document.createElement('style');
  style.id = 'prefapp-hide-disabled-tabs';
  style.textContent = 'button[role="tab"]:disabled { display: none !important; }';
  document.head.appendChild(style);
}
"""


def admin_tabs(ui: Any) -> list:
    """The tabs only an admin needs (data, training, labelling quality): disabled, and so hidden, for annotators."""
    return [tab for name in ("data_tab", "train_tab", "quality_tab") if (tab := getattr(ui, name, None)) is not None]


def _on_backup(ui: Any) -> str:
    path = ui.service.backup()
    return f"Backup written to {path} (open it with DuckDB or point --db at it)."


def _on_rescue_export(ui: Any, repo: str) -> str:
    return ui.api_export("", repo or "")
