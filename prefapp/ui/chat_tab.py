"""The Chat tab: one message to the base and the aligned model side by side, thumbs up / down on each side's
latest reply (stored as labelled completions that KTO rounds learn from), the aligned round to compare with, and
(admin) which model writes new pairs.

Replies stream in as the model writes them. Model output and messages are untrusted text: the chat views get HTML
made by prefapp.ui.render (Markdown rendered on the server, any HTML in the text shown as text, no images drawn),
with the Chatbot's own Markdown off (the text is parsed once) and its HTML sanitizer on.
"""

from functools import partial
from typing import Any, Iterator, Literal

import gradio as gr

from prefapp.evaluation.gate import GateRefused
from prefapp.service import PrefService
from prefapp.ui.access import ADMIN, ANNOTATOR, current_user, on, page_load
from prefapp.ui.common import PRIVATE, Update, aligned_dropdown, model_text, round_choices, round_name, toast_text, \
    user_errors
from prefapp.ui.header import Header
from prefapp.ui.render import markdown_html

NO_ALIGNED = "No aligned model yet: train a round in the Train tab."
CONFIRM_HERE = "To override: tick Confirm beside the button and press it again."


def shown(history: list[dict]) -> list[dict]:
    """A chat history ({"role", "content"} as the model saw it) as a Chatbot shows it: each turn rendered safely."""
    return [{"role": m["role"], "content": markdown_html(m["content"])} for m in history]


def reply(text: str) -> list[dict]:
    """The assistant's turn so far; none before its first word (the user's turn shows at once)."""
    return [{"role": "assistant", "content": text}] if text else []


def chat_view(label: str, elem_id: str, placeholder: str | None = None) -> gr.Chatbot:
    return gr.Chatbot(label=label, elem_id=elem_id, height=420, placeholder=placeholder, render_markdown=False,
                      sanitize_html=True, allow_tags=False, feedback_options=None, buttons=["copy"],
                      group_consecutive_messages=False)


def set_generator_message(service: PrefService, which: str, confirm: bool = False, how_to_confirm: str = "") -> str:
    """Make a finished round ('round-1' or '1') or 'base' the model that writes new pairs, through the promotion gate
    (`PrefService.make_generator`); a refusal says how to confirm from where it was asked."""
    with user_errors():
        try:
            return service.make_generator(round_name(which), confirm=bool(confirm), admin=current_user())
        except GateRefused as refused:
            raise GateRefused(refused.decision, how_to_confirm) from None


def unconfirmed() -> bool:
    """A promotion's confirmation is for that one promotion: the box is cleared once it went through."""
    return False


class ChatTab:
    """Compare the base and the aligned model on your own messages."""

    def __init__(self, service: PrefService, header: Header, label: Any = None) -> None:
        self.service = service
        self.header = header
        self.label = label  # the Label tab: its annotator box names who rates a reply (with accounts: who signed in)

    def render(self) -> None:
        with gr.Tab("Chat") as self.tab:
            with gr.Row():
                self.aligned_pick = gr.Dropdown(label="Aligned model (a finished round)", scale=2,
                                                choices=round_choices(self.service), value=self.service.aligned)
                self.use_aligned = gr.Button("Use the aligned model as the generator for new pairs", scale=2)
                self.confirm_gate = gr.Checkbox(False, label="Confirm: even if judged worse or flagged (recorded)",
                                                scale=1)
                self.use_base = gr.Button("Back to the base model as generator", scale=1)
            self.rate_buttons: dict[tuple[str, bool], gr.Button] = {}
            with gr.Row(equal_height=True):
                with gr.Column():
                    self.base_chat = chat_view("Base model", "base-chat")
                    self._render_thumbs("base")
                with gr.Column():
                    self.aligned_chat = chat_view("Aligned model", "aligned-chat", placeholder=NO_ALIGNED)
                    self._render_thumbs("aligned")
            self.rated = gr.Markdown()
            with gr.Row():
                self.message = gr.Textbox(label="Message to both models", scale=4, submit_btn=False)
                self.send = gr.Button("Send", variant="primary", scale=1)
                self.clear = gr.Button("Clear both", scale=1)
            with gr.Row():
                self.to_labeling = gr.Button("Label this chat: it and the message above become a prompt, its next "
                                             "two replies the next pair", size="sm")
            self.base_history = gr.State([])  # [{"role", "content"}] as the model saw it: small and copyable
            self.aligned_history = gr.State([])

    def _render_thumbs(self, side: str) -> None:
        with gr.Row():
            for good, text in ((True, "👍 good reply"), (False, "👎 bad reply")):
                self.rate_buttons[(side, good)] = gr.Button(f"{text} ({side})", size="sm")

    @property
    def admin_only(self) -> list:
        return [self.use_aligned, self.confirm_gate, self.use_base, self.to_labeling]

    def events(self) -> None:
        view = [self.base_chat, self.aligned_chat, self.base_history, self.aligned_history, self.message]
        model_info = self.header.model_info
        on(page_load(), self.on_load, None, [self.aligned_pick], role=ANNOTATOR, **PRIVATE)
        on([self.send.click, self.message.submit], self.on_chat, [self.message, self.base_history,
           self.aligned_history], view, role=ANNOTATOR, **PRIVATE)
        # The chat views' own clear icons clear both sides and the histories too, as the button does.
        on([self.clear.click, self.base_chat.clear, self.aligned_chat.clear], self.on_clear, None, view,
           role=ANNOTATOR, **PRIVATE)
        rater = [self.label.annotator, self.base_history, self.aligned_history]
        for (side, good), button in self.rate_buttons.items():
            on(button.click, partial(self.on_rate, side, good), rater, [self.rated], role=ANNOTATOR, **PRIVATE)
        on(self.tab.select, self.on_refresh, None, [self.aligned_pick, model_info], role=ANNOTATOR, **PRIVATE)
        on(self.aligned_pick.input, self.on_pick_aligned, [self.aligned_pick], [model_info, *view], role=ADMIN,
           **PRIVATE)
        # Through the promotion gate, as *Make generator*: a refused round needs Confirm ticked (recorded).
        # The checkbox is not an output of the switch: a refusal's error overlay would cover it.
        for button, which in ((self.use_aligned, "aligned"), (self.use_base, "base")):
            swapped = on(button.click, partial(self.on_generator, which), [self.confirm_gate], [model_info],
                         role=ADMIN, **PRIVATE)
            on(swapped.success, unconfirmed, None, [self.confirm_gate], role=ADMIN, **PRIVATE)
        on(self.to_labeling.click, self.on_to_labeling, [self.message, self.base_history], [self.message],
           role=ADMIN, **PRIVATE)

    def on_chat(self, message: str, base_history: list[dict], aligned_history: list[dict]) -> Iterator[Update]:
        """Both replies streamed into the chat views; once they are complete the histories are kept and the message
        box is emptied (so an emptied box means the chat is ready for the next message)."""
        turn = [{"role": "user", "content": message}]
        base, aligned = "", None
        with user_errors():
            for base, aligned in self.service.chat_stream(base_history, aligned_history, message):
                update = {self.base_chat: shown([*base_history, *turn, *reply(base)])}
                if aligned is not None:
                    update[self.aligned_chat] = shown([*aligned_history, *turn, *reply(aligned)])
                yield update
        base_history = [*base_history, *turn, {"role": "assistant", "content": base}]
        if aligned is not None:
            aligned_history = [*aligned_history, *turn, {"role": "assistant", "content": aligned}]
        yield {self.base_chat: shown(base_history), self.aligned_chat: shown(aligned_history),
               self.base_history: base_history, self.aligned_history: aligned_history, self.message: ""}

    def on_rate(self, side: str, good: bool, annotator: str, base_history: list[dict],
                aligned_history: list[dict]) -> str:
        """Thumbs on `side`'s latest reply, stored with who rated it and which model wrote it."""
        history = base_history if side == "base" else aligned_history
        if not history:
            raise gr.Error(f"There is no {side} reply to rate yet: send a message first.", print_exception=False)
        with user_errors():
            return self.service.rate_reply(history[:-1], history[-1]["content"], good, annotator, side)

    def on_clear(self) -> Update:
        return {self.base_chat: [], self.aligned_chat: [], self.base_history: [], self.aligned_history: [],
                self.message: ""}

    def on_load(self) -> gr.Dropdown:
        """A new page offers the rounds there are now."""
        return aligned_dropdown(self.service)

    def on_refresh(self) -> Update:
        return {self.aligned_pick: aligned_dropdown(self.service),
                self.header.model_info: model_text(self.service.model_info())}

    def on_pick_aligned(self, adapter: str | None) -> Update:
        with user_errors():
            self.service.set_aligned(adapter)
        # The aligned side's history came from another adapter: start both sides afresh.
        return {self.header.model_info: model_text(self.service.model_info()), **self.on_clear()}

    def on_generator(self, which: Literal["aligned", "base"], confirm: bool = False) -> str:
        if which == "aligned" and self.service.aligned is None:
            raise gr.Error("There is no aligned model yet: train a round in the Train tab first.")
        message = set_generator_message(self.service, self.service.aligned if which == "aligned" else "base",
                                        confirm, how_to_confirm=CONFIRM_HERE)
        gr.Info(toast_text(message))
        return model_text(self.service.model_info())

    def on_to_labeling(self, message: str, base_history: list[dict]) -> str:
        """The base side's conversation plus the typed message (the user's next turn) becomes a labelling prompt."""
        if not (message or "").strip():
            raise gr.Error("Type the next user message first: a labelling prompt ends with the user's turn.")
        with user_errors():
            result = self.service.send_to_labeling([*base_history, {"role": "user", "content": message}])
        gr.Info(toast_text(result))
        return ""
