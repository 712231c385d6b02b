"""The Label tab: the pair on screen, the vote buttons with keyboard shortcuts, skip and undo, an optional reason
or written better response, the guidelines, labelling progress, and the shared sampling settings (admin).

The guidelines are Markdown written by whoever runs the app (trusted); prompts and responses are untrusted and
shown through prefapp.ui.render (Markdown rendered on the server, HTML in them shown as text, no images drawn).
"""

import html
from functools import partial
from typing import Any, Iterator

import gradio as gr

from prefapp.labeling.next_pair import Progress
from prefapp.service import PrefService
from prefapp.store import VoteCounts
from prefapp.ui.access import ADMIN, ANNOTATOR, on, page_load
from prefapp.ui.common import PRIVATE, Update, earlier_turns, last_turn, turns_view, user_errors
from prefapp.ui.render import markdown_html

VOTE_BUTTONS = {"A": "A is better", "B": "B is better", "tie": "Tie", "both_bad": "Both bad"}
SHORTCUTS = {"A": "1", "B": "2", "tie": "3", "both_bad": "4", "skip": "s", "undo": "u"}  # key per action
BUTTON_IDS = {action: f"label-{action.replace('_', '-')}" for action in SHORTCUTS}
SOURCE_WORDS = {"queue": "ready in the queue", "generated": "generated just now (the queue was empty)",
                "overlap": "also labelled by someone else (overlap, to measure agreement)",
                "probe": "a repeat of a pair you labelled, sides swapped (consistency check)",
                "undo": "your last vote was taken back: vote again"}
# Label events and labelling API calls share one group: one annotator waiting on the model must not hold up others.
LABEL_CONCURRENCY = dict(concurrency_id="label", concurrency_limit=16)

# One document-level listener (installed once per page): a key clicks its button unless the user is typing.
KEYBOARD_JS = """
if (!window.__prefappKeys) {
  window.__prefappKeys = true;
  const ids = %s;
  document.addEventListener('keydown', (e) => {
    if (e.ctrlKey || e.metaKey || e.altKey || e.repeat) return;
    const t = e.target;
    const typing = t && (['INPUT', 'TEXTAREA', 'SELECT'].includes(t.tagName) || t.isContentEditable);
    if (typing) return;
    const id = ids[e.key.toLowerCase()];
    const button = id && document.getElementById(id);
    if (button && !button.disabled && button.offsetParent !== null) { e.preventDefault(); button.click(); }
  });
}
""" % ({key: BUTTON_IDS[action] for action, key in SHORTCUTS.items()},)


def button_label(text: str, action: str) -> str:
    """'A is better' -> 'A is better [1]': the shortcut is shown on the button itself."""
    return f"{text} [{SHORTCUTS[action].upper()}]"


def render_keyboard() -> gr.HTML:
    hint = " · ".join(f"{key.upper()} {action.replace('_', ' ')}" for action, key in SHORTCUTS.items())
    return gr.HTML(f"<small>Keyboard: {html.escape(hint)} (not while typing in a box)</small>",
                   js_on_load=KEYBOARD_JS, elem_id="label-keys")


def progress_markdown(progress: Progress) -> str:
    q = progress.queue
    parts = [f"**{progress.unlabelled}** of {progress.prompts} prompts still need a first label"]
    if progress.overlap_short:
        parts.append(f"{progress.overlap_short} pairs still need another annotator")
    queue = f"queue: {q.ready}/{q.target} pairs ready from {q.generator}"
    if q.generating:
        queue += " (generating more)"
    if q.error:
        queue += f" - last batch failed: {q.error}"
    parts.append(queue)
    return " · ".join(parts)


def shown_markdown(label: str, elem_id: str, min_height: int = 160, max_height: int = 500) -> gr.HTML:
    """A labelled, read-only box for untrusted text rendered by prefapp.ui.render.markdown_html."""
    return gr.HTML("", label=label, show_label=True, container=True, padding=True, js_on_load=None, elem_id=elem_id,
                   elem_classes=["shown-markdown"], min_height=min_height, max_height=max_height)


def source_text(source: str) -> str:
    return SOURCE_WORDS.get(source, source)


class LabelTab:
    """Label pairs: one round trip per vote records it and returns the next pair."""

    def __init__(self, service: PrefService) -> None:
        self.service = service

    def render(self) -> None:
        with gr.Tab("Label") as self.tab:
            self._render_pair()
            self._render_controls()

    def _render_pair(self) -> None:
        with gr.Row():
            self.annotator = gr.Textbox(label="Your name (annotator)", placeholder="type your name, then Enter",
                                        max_length=100, scale=3)
            self.my_votes = gr.Number(label="Your votes", value=0, interactive=False, precision=0, scale=1)
            self.all_votes = gr.Number(label="Everyone's votes", value=self.service.counts().total,
                                       interactive=False, precision=0, scale=1)
        with gr.Row():
            with gr.Column(scale=4):
                self.turns = turns_view("prompt-turns")  # a conversation's earlier turns; hidden for one turn
                self.prompt = shown_markdown("Prompt", "prompt", min_height=60, max_height=300)
                with gr.Row(equal_height=True):
                    self.response_a = shown_markdown("Response A", "response-a")
                    self.response_b = shown_markdown("Response B", "response-b")
            with gr.Column(scale=1, min_width=220):
                self.guidelines = gr.Markdown(self.service.config.labeling.guidelines, label="Guidelines")

    def _render_controls(self) -> None:
        with gr.Row():
            self.vote_buttons = {
                choice: gr.Button(button_label(label, choice), elem_id=BUTTON_IDS[choice],
                                  variant="primary" if choice in ("A", "B") else "secondary")
                for choice, label in VOTE_BUTTONS.items()}
            self.skip_button = gr.Button(button_label("Skip", "skip"), elem_id=BUTTON_IDS["skip"])
            self.undo_button = gr.Button(button_label("Undo last vote", "undo"), elem_id=BUTTON_IDS["undo"])
        with gr.Accordion("Optional: a reason, or a better response you write (it becomes 'chosen')", open=False):
            self.reason = gr.Textbox(label="Reason (optional)", max_length=2000)
            self.written = gr.Textbox(label="Your better response (optional; vote A, B or Both bad with it)", lines=3,
                                      max_length=20000)
        self.keys = render_keyboard()
        self.label_progress = gr.Markdown(elem_id="label-progress")
        with gr.Row():
            self.status = gr.Textbox(label="Status", value="Enter your name to get the first pair.",
                                     interactive=False, scale=4)
            self.written_by = gr.Textbox(label="Written by", interactive=False, scale=1)
            # The pair on screen is the session's state; shown, so a vote can be traced to what was seen.
            self.pair_id = gr.Textbox(label="Pair id", interactive=False, scale=1, elem_id="pair-id")
        with gr.Accordion("Sampling (shared by all annotators; applies to the next pair)", open=False):
            s = self.service.sampling
            with gr.Row():
                self.temperature = gr.Slider(0.05, 2.0, value=s.temperature, step=0.05, label="temperature")
                self.top_p = gr.Slider(0.05, 1.0, value=s.top_p, step=0.05, label="top_p")
                self.max_new_tokens = gr.Slider(8, 1024, value=s.max_new_tokens, step=8, label="max_new_tokens")
            self.apply_sampling = gr.Button("Apply sampling")

    @property
    def admin_only(self) -> list:
        return [self.apply_sampling]

    @property
    def vote_view(self) -> list:
        """Everything a vote, skip, undo or a new name changes."""
        return [self.pair_id, self.turns, self.prompt, self.response_a, self.response_b, self.written_by, self.status,
                self.my_votes, self.all_votes, self.reason, self.written, self.label_progress]

    def events(self) -> None:
        on(page_load(), self.on_load, None, [self.all_votes, self.temperature, self.top_p, self.max_new_tokens],
           role=ANNOTATOR, **PRIVATE)
        # No progress overlay: drawing it on every output cost more than the vote itself (the status line says
        # when the next pair is being generated).
        label = dict(**LABEL_CONCURRENCY, show_progress="hidden", **PRIVATE)
        on(self.annotator.submit, self.on_annotator, self.name_inputs, self.vote_view, role=ANNOTATOR, **label)
        # Leaving the box only recounts: an event whose outputs include the pair's HTML views re-renders them, and
        # a click that left the box (on a vote button, say) was lost in that re-render (seen in Chromium).
        on(self.annotator.blur, self.on_name_left, self.name_inputs, [self.my_votes, self.all_votes, self.status],
           role=ANNOTATOR, **label)
        for choice, button in self.vote_buttons.items():
            on(button.click, partial(self.on_vote, choice), [self.pair_id, self.annotator, self.reason, self.written],
               self.vote_view, role=ANNOTATOR, **label)
        on(self.skip_button.click, self.on_next_pair, [self.annotator], self.vote_view, role=ANNOTATOR, **label)
        on(self.undo_button.click, self.on_undo, [self.annotator], self.vote_view, role=ANNOTATOR, **label)
        on(self.apply_sampling.click, self.on_sampling, [self.temperature, self.top_p, self.max_new_tokens],
           [self.status], role=ADMIN, **PRIVATE)

    @property
    def name_inputs(self) -> list:
        """What `on_annotator` reads, whether the name was typed or filled in by sign-in."""
        return [self.annotator, self.pair_id]

    # --- handlers: thin adapters from events to the service ----------------------------------------------------

    def on_load(self) -> Update:
        """A new page shows the shared state as it is now, not as it was when the app was built."""
        s = self.service.sampling
        return {self.all_votes: self.service.counts().total, self.temperature: s.temperature, self.top_p: s.top_p,
                self.max_new_tokens: s.max_new_tokens}

    def on_annotator(self, annotator: str, pair_id: str) -> Update:
        if not annotator.strip():
            return {self.status: "Enter your name to get the first pair."}
        if pair_id:  # a pair is already on screen; a changed name only changes who votes on it
            counts = self.service.counts(annotator)
            return {self.my_votes: counts.mine, self.all_votes: counts.total}
        with user_errors():
            pair = self.service.next_pair(annotator)
        return {**self._pair_update(pair, annotator), self.status: "Read the prompt and both responses, then pick."}

    def on_name_left(self, annotator: str, pair_id: str) -> Update:
        if not annotator.strip():
            return {self.status: "Enter your name to get the first pair."}
        if not pair_id:
            return {self.status: "Press Enter in the name box to get your first pair."}
        with user_errors():
            counts = self.service.counts(annotator)
        return {self.my_votes: counts.mine, self.all_votes: counts.total}

    def on_next_pair(self, annotator: str) -> Iterator[Update]:
        if self.service.ready_pairs() == 0:  # the model must run first: say so instead of freezing
            yield {**self._blank_pair(), self.status: "No pair is ready yet: generating one now..."}
        with user_errors():
            pair = self.service.next_pair(annotator)
        yield {**self._pair_update(pair, annotator), self.status: f"Next pair: {source_text(pair.source)}."}

    def on_vote(self, choice: str, pair_id: str, annotator: str, reason: str = "", written: str = ""
                ) -> Iterator[Update]:
        if not pair_id:
            raise gr.Error("No pair is on screen yet: enter your name, or wait for the next pair to load.")
        with user_errors():
            outcome = self.service.vote(pair_id, choice, annotator, reason or "", written or "")
        done = {self.status: outcome.message, self.reason: "", self.written: ""}
        if self.service.ready_pairs() == 0:
            # Blank the pair at once, so a second click cannot land on it while the next one is generated.
            yield {**self._blank_pair(), **done, self.status: f"{outcome.message} Generating the next pair..."}
        with user_errors():
            pair = self.service.next_pair(annotator)
        yield {**self._pair_update(pair, annotator, outcome.counts), **done}

    def on_undo(self, annotator: str) -> Update:
        with user_errors():
            pair = self.service.undo(annotator)
        if pair is None:
            return {self.status: "You have no vote to undo."}
        return {**self._pair_update(pair, annotator), self.status: f"Undone: {source_text(pair.source)}."}

    def on_sampling(self, temperature: float, top_p: float, max_new_tokens: int) -> str:
        with user_errors():
            s = self.service.set_sampling(temperature, top_p, max_new_tokens)
        return (f"Sampling set for everyone's next pair: temperature {s.temperature}, top_p {s.top_p}, "
                f"max_new_tokens {s.max_new_tokens}.")

    def _pair_update(self, pair: Any, annotator: str, counts: VoteCounts | None = None) -> Update:
        counts = counts or self.service.counts(annotator)
        return {self.pair_id: pair.pair_id, self.turns: earlier_turns(pair.messages),
                self.prompt: markdown_html(last_turn(pair.messages, pair.prompt)),
                self.response_a: markdown_html(pair.response_a), self.response_b: markdown_html(pair.response_b),
                self.written_by: pair.generator, self.my_votes: counts.mine,
                self.all_votes: counts.total, self.label_progress: progress_markdown(self.service.progress())}

    def _blank_pair(self) -> Update:
        return {self.pair_id: "", self.turns: earlier_turns(()), self.prompt: "", self.response_a: "", self.response_b: "", self.written_by: ""}
