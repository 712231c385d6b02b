"""The page header, one compact line: which model serves and writes new pairs, who can reach the app (and the Hub
sign-in button); on demand, the model's details, the Space storage warning with its one-click export, and the
backup button."""

import gradio as gr

from prefapp.hosting.auth import Access, HubLogin
from prefapp.hosting.environment import access_text, storage_warning
from prefapp.service import PrefService
from prefapp.ui.access import ADMIN, ANNOTATOR, PUBLIC, declare, on, page_load
from prefapp.ui.common import PRIVATE, model_details, model_text
from prefapp.ui.data_tab import export_message


class Header:
    """Title, model line, access line and the data-safety panel."""

    def __init__(self, service: PrefService, accounts: Access | None) -> None:
        self.service = service
        self.accounts = accounts
        self.login: gr.LoginButton | None = None
        self.rescue_button: gr.Button | None = None

    def render(self) -> None:
        """One compact line (model, access, sign-in); the details and the data-safety tools on demand."""
        config = self.service.config
        summary = self.accounts.summary() if self.accounts else None
        if self.accounts is not None:
            gr.HTML("", js_on_load=HIDE_DISABLED_TABS_JS, elem_id="access-tabs", padding=False)
        with gr.Row(equal_height=True, elem_id="header-line"):
            gr.HTML("<strong>prefapp</strong>", js_on_load=None, scale=0, min_width=70, elem_id="header-title")
            self.model_info = gr.Textbox(model_text(self.service.model_info()), label="Model", show_label=False,
                                         container=False, interactive=False, max_lines=1, scale=5,
                                         elem_id="header-model")
            self.access = gr.Textbox(access_text(config.host, summary), label="Access", show_label=False,
                                     container=False, interactive=False, max_lines=1, scale=4, elem_id="header-access")
            if isinstance(self.accounts, HubLogin):  # gradio adds its OAuth routes (/login/huggingface) for it
                self.login = gr.LoginButton(scale=0, size="sm", min_width=180)
        warning = storage_warning(config.data_dir)
        label = "Details: model, access, data safety" + (" (storage warning)" if warning else "")
        with gr.Accordion(label, open=warning is not None, elem_id="header-details"):
            gr.Textbox(model_details(self.service.model_info()), label="Model details", interactive=False,
                       max_lines=3)
            with gr.Column() as self.safety:
                if warning:
                    gr.Textbox(label="Storage warning", value=warning, interactive=False, elem_id="storage-warning")
                    with gr.Row():
                        self.rescue_repo = gr.Textbox(label="Hub dataset repo to push to (optional; needs HF_TOKEN)",
                                                      placeholder="user/my-prefs", scale=3)
                        self.rescue_button = gr.Button("Export now (and push)", variant="stop", scale=1)
                self.backup_button = gr.Button("Back up the database now (a consistent copy while the app runs)")
                self.safety_result = gr.Textbox(label="Backup or export result", interactive=False, lines=2)

    @property
    def admin_only(self) -> list:
        """Hidden from a signed-in annotator (the server refuses their events anyway)."""
        return [self.safety]

    def events(self) -> None:
        on(self.backup_button.click, self.on_backup, None, [self.safety_result], role=ADMIN, **PRIVATE)
        if self.rescue_button is not None:
            on(self.rescue_button.click, self.on_rescue_export, [self.rescue_repo], [self.safety_result], role=ADMIN,
               **PRIVATE)
        # A new page shows the model as it is now, not as it was when the app was built.
        on(page_load(), self.on_load, None, [self.model_info], role=ANNOTATOR, **PRIVATE)

    def declare_gradio_events(self, blocks: gr.Blocks) -> None:
        """Roles for the events gradio itself attaches when the Blocks closes: the LoginButton's
        'Logout (name)' refresh runs for anyone who has the page."""
        if self.login is not None and self.login.load_event:
            declare(self.login.load_event, PUBLIC, blocks)

    def on_load(self) -> str:
        return model_text(self.service.model_info())

    def on_backup(self) -> str:
        path = self.service.backup()
        return f"Backup written to {path} (open it with DuckDB or point --db at it)."

    def on_rescue_export(self, repo: str) -> str:
        return export_message(self.service, "", repo or "")

    def signed_in_text(self, user: str | None) -> str:
        accounts = self.accounts
        assert accounts is not None
        role = accounts.role(user)
        hub = isinstance(accounts, HubLogin)
        if user is None:
            return ("Not signed in: use the 'Sign in with Hugging Face' button to label." if hub else
                    "Not signed in: reload the page and sign in.")
        if role is None:
            return (f"Signed in as {user}, who has no role here: ask an admin to add your Hub name to "
                    "PREFAPP_HF_ANNOTATORS.") if hub else f"Signed in as {user} (no role)."
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
