"""The Gradio app assembled: the header, six tabs (Label, Evaluate, Data, Train, Chat, Quality) and the named API around
one shared `PrefService`, each tab a class in its own module with `render()` (layout) and `events()` (wiring).

Sharing: one `PrefService` (model, store, training job) serves every browser session; per-session state is only
what a session must remember itself: the pair on screen and the two chat histories. Sampling settings, the
generator and the aligned round are properties of the shared service, so changing them changes them for everyone.

Roles: every event is wired through `prefapp.ui.access.on` / `api`, which records who may trigger it; once every
event exists, `guard_events` enforces the roles on the server and refuses any event that declares none.
"""

import logging

import gradio as gr

from prefapp.config import AppConfig
from prefapp.hosting.auth import Access, access_from_env
from prefapp.hosting.durability import stop_on_signals
from prefapp.hosting.environment import check_bind, install_log_redaction
from prefapp.hosting.routes import launch_options
from prefapp.service import PrefService
from prefapp.ui.access import ANNOTATOR, PUBLIC, Role, current_user, guard_events, on, page_load
from prefapp.ui.api import API_NAMES, Api
from prefapp.ui.chat_tab import ChatTab
from prefapp.ui.common import PRIVATE, Update
from prefapp.ui.data_tab import DataTab
from prefapp.ui.evaluate_tab import EvaluateTab
from prefapp.ui.header import Header
from prefapp.ui.label_tab import LabelTab
from prefapp.ui.quality_tab import QualityTab
from prefapp.ui.train_tab import TrainTab

__all__ = ["API_NAMES", "PrefUI", "build_ui", "launch"]
log = logging.getLogger(__name__)


class PrefUI:
    """The app's Blocks around one shared PrefService; `roles` maps each Python event's id to its declared role."""

    def __init__(self, service: PrefService, accounts: Access | None = None) -> None:
        self.service = service
        self.accounts = accounts  # None: no sign-in, everyone may do every declared event
        self.header = Header(service, accounts)
        self.label = LabelTab(service)
        self.data = DataTab(service)
        self.chat = ChatTab(service, self.header, self.label)
        self.train = TrainTab(service, self.header, self.chat)
        self.quality = QualityTab(service)
        self.evaluate = EvaluateTab(service)
        self.api = Api(service)
        self.tabs = (self.label, self.evaluate, self.data, self.train, self.chat, self.quality)  # tab-bar order
        with gr.Blocks(title="prefapp: preference labelling and DPO") as self.blocks:
            self.header.render()
            with gr.Tabs():
                for tab in self.tabs:
                    tab.render()
            for part in (self.header, *self.tabs, self.api):
                part.events()
            if accounts is not None:
                self._sign_in_events()
        self.header.declare_gradio_events(self.blocks)  # gradio attaches those as the Blocks closes
        self.roles: dict[int, Role | None] = guard_events(self.blocks, accounts, self.label.annotator)

    def _admin_only(self) -> list:
        return [c for part in (self.header, *self.tabs) for c in part.admin_only]

    def _sign_in_events(self) -> None:
        """With accounts: fill in the signed-in name, hide admin tabs from annotators, then serve the first pair."""
        self.label.annotator.interactive = False  # the signed-in name; the server ignores any other value anyway
        outputs = [self.label.annotator, self.header.access, *self._admin_only()]
        signed_in = on(page_load(), self.on_signed_in, None, outputs, role=PUBLIC, **PRIVATE)
        on(signed_in.then, self.label.on_annotator, self.label.name_inputs, self.label.vote_view, role=ANNOTATOR,
           **PRIVATE)

    def on_signed_in(self) -> Update:
        accounts = self.accounts
        assert accounts is not None
        user = current_user()
        admin = accounts.allows(user, "admin")
        # gradio 6.31 ignores `visible` on a Tab but applies `interactive` (the header's CSS hides disabled tabs).
        hidden = {c: gr.Tab(visible=admin, interactive=admin) if isinstance(c, gr.Tab) else gr.update(visible=admin)
                  for c in self._admin_only()}
        return {self.label.annotator: user or "", self.header.access: self.header.signed_in_text(user), **hidden}


def build_ui(service: PrefService, accounts: Access | None = None) -> gr.Blocks:
    """The app's Blocks around `service`, not launched; with `accounts`, every event checks the user's role."""
    return PrefUI(service, accounts).blocks


def launch(config: AppConfig) -> None:
    """Open the service (model, store), build the UI and serve it on config.host:config.port until stopped."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    install_log_redaction()  # Hub tokens never reach the log, whoever logs them
    accounts = access_from_env(config.users_file)
    check_bind(config.host, accounts is not None, config.allow_public)  # before the slow model load
    launch_options(accounts)  # bad hosting settings (upload limit, trusted proxies) fail before the model loads
    stop_on_signals()  # SIGTERM stops as Ctrl-C does, so the store below is closed and checkpointed
    service = PrefService.open(config)
    options = launch_options(accounts, service)  # login guard, doors, upload limit, light routes (prefapp.hosting)
    log.info("serving %s on http://%s:%d (%s)", service.model_info().label, config.host, config.port,
             accounts.summary() if accounts else "open, no accounts")
    try:
        build_ui(service, accounts).queue().launch(server_name=config.host, server_port=config.port, **options)
    finally:
        service.close()
