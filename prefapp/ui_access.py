"""Who may do what in the app, enforced on the server for every event and every named API endpoint.

`guard_events` wraps the function of every event the app registered (button clicks, loads, timers and the
`gr.api` endpoints alike), so a role is checked no matter how the event is reached: a hidden tab's button
called from the browser console or `gradio_client` meets the same check as a click. With accounts on, the
annotator name a handler receives is replaced by the signed-in user (`gr.Request.username`), so a vote can
never be attributed to a name the client sent. Without accounts everyone may do everything (the header says so).

Roles per handler: names in ANNOTATOR_HANDLERS are open to annotators, names in ADMIN_HANDLERS need an admin;
any other handler (a new one, say) is open to annotators only when all its triggers sit in the Label or Chat
tab, and needs an admin otherwise: a forgotten entry fails closed.

Also here: the header's access line, the Space storage warning with its one-click export, and the backup button.
"""

import functools
import inspect
import logging
from typing import Any, Callable

import gradio as gr
from gradio.context import LocalContext

from prefapp.auth import Accounts
from prefapp.hosting import access_text, storage_warning

log = logging.getLogger(__name__)

ANNOTATOR_HANDLERS = {  # labelling and chatting, and the read-only page refreshes they need
    "_on_load", "_on_annotator", "_on_next_pair", "_on_vote", "_on_undo", "_on_chat", "_on_clear_chat", "_on_chat_tab",
    "_on_access_load", "api_next_pair", "api_vote", "api_chat",
}
ADMIN_HANDLERS = {  # shared settings that sit in annotator tabs but change the app for everyone
    "_on_sampling", "_on_generator", "_on_pick_aligned", "_on_backup", "_on_rescue_export",
    "api_export", "api_train", "api_train_status", "api_set_generator",
}
ANNOTATOR_PARAM = "annotator"  # the handler parameter that names who acts


def handler_name(fn: Callable) -> str:
    while isinstance(fn, functools.partial):
        fn = fn.func
    return getattr(fn, "__name__", repr(fn))


def current_user() -> str | None:
    """The signed-in user of the event being processed (None when the app has no accounts)."""
    request = LocalContext.request.get(None)
    return getattr(request, "username", None)


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


def _authorize(accounts: Accounts, role: str, name: str, slots: list[int], args: tuple) -> tuple | None:
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


def _refuse(accounts: Accounts, role: str, quiet: bool) -> Any:
    if quiet:  # a timer tick on an annotator's page (e.g. training progress): no update, no error toast
        return gr.skip()
    user = current_user()
    raise gr.Error(f"Your account ({accounts.role(user) or 'not signed in'}) may not do this: it needs the {role} "
                   "role. Ask an admin.", print_exception=False)


def _guarded(fn: Callable, accounts: Accounts, role: str, slots: list[int], quiet: bool) -> Callable:
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


def guard_events(ui: Any, accounts: Accounts | None) -> dict[str, str]:
    """Check roles on every registered event of `ui.blocks`; returns {handler: role} (empty without accounts)."""
    roles: dict[str, str] = {}
    if accounts is None:
        return roles
    for block_fn in ui.blocks.fns.values():
        if block_fn.fn is None:  # a front-end-only event runs no Python
            continue
        role, slots = needed_role(ui, block_fn), _annotator_slots(ui, block_fn)
        quiet = any(event == "tick" for _, event in block_fn.targets)  # a periodic refresh
        roles[handler_name(block_fn.fn)] = role
        block_fn.fn = _guarded(block_fn.fn, accounts, role, slots, quiet)
    return roles


# --- the header's access panel ---------------------------------------------------------------------------------


def render_access(ui: Any, accounts: Accounts | None) -> None:
    """The access line, the storage warning with a one-click export, and (for admins) the backup button."""
    config = ui.service.config
    names = sorted(accounts.users) if accounts else None
    ui.access = gr.Textbox(label="Access", value=access_text(config.host, names), interactive=False, max_lines=1)
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


def setup_access_events(ui: Any, accounts: Accounts | None) -> None:
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


def _on_access_load(ui: Any, accounts: Accounts) -> dict:
    user = current_user()
    admin = accounts.allows(user, "admin")
    role = accounts.role(user) or "no role"
    return {ui.annotator: user or "", ui.access: f"Signed in as {user} ({role}).",
            **{tab: gr.Tab(visible=admin, interactive=admin) for tab in admin_tabs(ui)},
            **{c: gr.update(visible=admin) for c in (ui.safety, ui.apply_sampling, ui.use_aligned, ui.use_base)}}


def admin_tabs(ui: Any) -> list:
    """The tabs only an admin needs (data, training, labelling quality): disabled for annotators.

    Disabled rather than hidden: gradio 6.31 applies `interactive` updates to a Tab but ignores `visible` ones.
    """
    return [tab for name in ("data_tab", "train_tab", "quality_tab") if (tab := getattr(ui, name, None)) is not None]


def _on_backup(ui: Any) -> str:
    path = ui.service.backup()
    return f"Backup written to {path} (open it with DuckDB or point --db at it)."


def _on_rescue_export(ui: Any, repo: str) -> str:
    return ui.api_export("", repo or "")
