"""The Gradio app: four tabs (Label, Data, Train, Chat) and a small named API, all adapting events to `PrefService`.

Layout lives in the `_render_*` methods, wiring in `_setup_events` and `_setup_api` (the shape of gradio's own
ChatInterface). Handlers are thin: they call the service and turn a `ValueError`/`ConfigError` into `gr.Error`.

Sharing: one `PrefService` (model, store, training job) serves every browser session; per-session state is only
what a session must remember itself: the pair on screen and the two chat histories. Sampling settings, the
generator and the aligned round are properties of the shared service, so changing them changes them for everyone.

Model output and prompts are untrusted text: they are only ever shown in read-only textboxes and tables, which
render plain text, never as HTML or Markdown (gr.Chatbot is not used: it renders HTML even without Markdown).

No `from __future__ import annotations` here: gradio reads the API functions' type hints at runtime
(`get_return_types` uses the raw annotation, so a string annotation would turn a 4-tuple into one output).
"""

import html
import logging
from dataclasses import asdict, replace
from functools import partial
from typing import Any, Iterator, Literal

import gradio as gr
import pandas as pd

from prefapp.hosting.auth import Access, access_from_env
from prefapp.config import AppConfig, ConfigError, TrainConfig
from prefapp.service import PrefService, round_adapter_name
from prefapp.store import Round, VoteCounts
from prefapp.training.dpo import LOSS_TYPES
from prefapp.training.progress import TrainProgress
from prefapp.hosting.durability import stop_on_signals
from prefapp.hosting.environment import check_bind, install_log_redaction
from prefapp.hosting.routes import launch_options
from prefapp.ui.common import model_text, rounds_frame, toast_text, user_errors
from prefapp.ui.access import guard_events, render_access, setup_access_events
from prefapp.ui.train import render_round_ops, render_train_options, setup_train_events
from prefapp.preferences.resolve import BOTH_BAD, DISAGREEMENT, WRITTEN, ExportOptions
from prefapp.ui.label import (BUTTON_IDS, annotators_frame, button_label, pairwise_frame, progress_markdown,
                              quality_markdown, render_keyboard, render_quality_tab, source_text)

log = logging.getLogger(__name__)

VOTE_BUTTONS = {"A": "A is better", "B": "B is better", "tie": "Tie", "both_bad": "Both bad"}
API_NAMES = ("next_pair", "vote", "undo", "add_prompts", "import_prompts", "quality", "export", "train",
             "train_status", "chat", "set_generator")
LABEL_API = ("next_pair", "vote", "undo")
# Label events and labelling API calls share one group: one annotator waiting on the model must not hold up others.
LABEL_CONCURRENCY = dict(concurrency_id="label", concurrency_limit=16)
POLL_SECONDS = 2.0  # training progress refresh; one step of the demo model takes about a second on a laptop CPU
ENDED = ("finished", "failed", "cancelled")
METRICS_PLOTTED = ("loss", "rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies")
NO_ALIGNED = "No aligned model yet: train a round in the Train tab."
Update = dict[Any, Any]  # {component: new value}: gradio applies only the components named


# --- text for humans (pure functions of service results) -----------------------------------------------------


def data_counts_markdown(prompts: int, counts: VoteCounts, pairs: int, ties: int, both_bad: int) -> str:
    by = counts.by_choice
    return (
        f"**{prompts}** prompts - **{counts.total}** votes (A {by.get('A', 0)}, B {by.get('B', 0)}, "
        f"tie {by.get('tie', 0)}, both bad {by.get('both_bad', 0)}) - **{pairs}** DPO pairs; "
        f"left out of training: {ties} ties, {both_bad} both bad."
    )


def progress_html(progress: TrainProgress | None) -> str:
    if progress is None:
        return "<p>No training run in this app session yet.</p>"
    total = max(progress.total_steps, 1)
    eta = "-" if progress.eta_s is None or progress.state in ENDED else f"{progress.eta_s:.0f} s"
    return (
        f'<progress max="{total}" value="{min(progress.step, total)}" style="width:100%;height:1.2em"></progress>'
        f"<div>step {progress.step}/{progress.total_steps} · epoch {progress.epoch:.2f} · "
        f"elapsed {progress.elapsed_s:.0f} s · ETA {eta} · {html.escape(progress.state)}</div>"
        + "".join(f'<div class="train-warning">⚠ {html.escape(w)}</div>' for w in progress.warnings)
    )


def history_frame(progress: TrainProgress | None) -> pd.DataFrame | None:
    """Logged rows in long form (step, metric, value) for one LinePlot with a line per metric; None before any."""
    rows = [
        {"step": row["step"], "metric": name, "value": float(row[name])}
        for row in (progress.history if progress else ())
        for name in METRICS_PLOTTED
        if name in row
    ]
    # None, not an empty frame: gradio 6.31's LinePlot never draws lines once it has been given an empty frame
    # (checked in Chromium); None resets it cleanly.
    return pd.DataFrame(rows) if rows else None


def metrics_frame(metrics: dict[str, float]) -> pd.DataFrame:
    """The latest logged values, the plotted ones first."""
    order = sorted(metrics, key=lambda k: (k not in METRICS_PLOTTED, k))
    return pd.DataFrame([{"metric": k, "value": f"{metrics[k]:.4g}"} for k in order], columns=["metric", "value"])


def transcript(history: list[dict]) -> str:
    """A chat history as plain text, one block per turn."""
    return "\n\n".join(f"{'You' if m['role'] == 'user' else 'Model'}: {m['content']}" for m in history)


def train_config(base: TrainConfig, **knobs: Any) -> TrainConfig:
    """The UI's knobs over the app's defaults; an emptied field is named instead of crashing in int()."""
    for name, value in knobs.items():
        if value is None or value == "":
            raise ConfigError(f"{name} is empty: enter a value (default {getattr(base, name)})")
    ints = {"batch_size", "max_length", "lora_r", "save_steps"}
    def typed_value(name: str, value: Any) -> Any:
        if name in ints:
            return int(value)
        return str(value) if name == "loss_type" else (value if isinstance(value, bool) else float(value))

    typed = {k: typed_value(k, v) for k, v in knobs.items()}
    # lora_alpha follows lora_r (2x, as the CLI does), so changing the rank does not silently change the scale.
    return replace(base, **typed, lora_alpha=2 * typed.get("lora_r", base.lora_r))


def round_name(which: str | None) -> str | None:
    """'base'/'' -> None, '3' -> 'round-3', 'round-3' stays."""
    which = (which or "").strip()
    if which in ("", "base"):
        return None
    return round_adapter_name(int(which)) if which.isdigit() else which


def status_dict(progress: TrainProgress | None, running: bool, rounds: list[Round]) -> dict:
    """What /train_status returns: the latest progress, whether the round is still running, its number."""
    if progress is None:
        return {"state": "idle", "running": running, "message": "no training run in this app session"}
    return {
        "state": progress.state, "running": running, "step": progress.step, "total_steps": progress.total_steps,
        "epoch": progress.epoch, "elapsed_s": progress.elapsed_s, "eta_s": progress.eta_s,
        "metrics": progress.metrics, "message": progress.message, "warnings": list(progress.warnings),
        "round": max((r.id for r in rounds), default=None),
    }


# --- the app ---------------------------------------------------------------------------------------------------


class PrefUI:
    """Layout and wiring of the app around one shared PrefService."""

    def __init__(self, service: PrefService, accounts: Access | None = None) -> None:
        self.service = service
        self.accounts = accounts  # None: no sign-in, everyone may do everything
        with gr.Blocks(title="prefapp: preference labelling and DPO") as self.blocks:
            self._render_header()
            with gr.Tabs():
                with gr.Tab("Label") as self.label_tab:
                    self._render_label_tab()
                with gr.Tab("Data") as self.data_tab:
                    self._render_data_tab()
                with gr.Tab("Train") as self.train_tab:
                    self._render_train_tab()
                with gr.Tab("Chat") as self.chat_tab:
                    self._render_chat_tab()
                with gr.Tab("Quality") as self.quality_tab:
                    render_quality_tab(self)
            self._setup_events()
            self._setup_api()
            setup_access_events(self, accounts)
        self.roles = guard_events(self, accounts)  # after every event exists: roles are checked on the server

    # --- layout --------------------------------------------------------------------------------------------------

    def _render_header(self) -> None:
        gr.Markdown("## prefapp - label pairs, train DPO, compare, repeat")
        self.model_info = gr.Textbox(label="Model", value=model_text(self.service.model_info()), interactive=False)
        render_access(self, self.accounts)

    def _render_label_tab(self) -> None:
        with gr.Row():
            self.annotator = gr.Textbox(label="Your name (annotator)", placeholder="type your name, then Enter",
                                        max_length=100, scale=3)
            self.my_votes = gr.Number(label="Your votes", value=0, interactive=False, precision=0, scale=1)
            self.all_votes = gr.Number(label="Everyone's votes", value=self.service.counts().total,
                                       interactive=False, precision=0, scale=1)
        with gr.Row():
            with gr.Column(scale=4):
                self.prompt = gr.Textbox(label="Prompt", interactive=False, lines=2, max_lines=12)
                with gr.Row(equal_height=True):
                    self.response_a = gr.Textbox(label="Response A", interactive=False, lines=6, max_lines=20)
                    self.response_b = gr.Textbox(label="Response B", interactive=False, lines=6, max_lines=20)
            with gr.Column(scale=1, min_width=220):
                self.guidelines = gr.Markdown(self.service.config.labeling.guidelines, label="Guidelines")
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

    def _render_data_tab(self) -> None:
        self.data_counts = gr.Markdown()
        self.preview = gr.Dataframe(label="Preview of the DPO dataset (first rows)", datatype="str",
                                    headers=["prompt", "chosen", "rejected"], interactive=False, wrap=True,
                                    max_height=400, column_widths=["24%", "38%", "38%"])  # all three in view
        self.refresh_data = gr.Button("Refresh")
        with gr.Row():
            with gr.Column():
                gr.Markdown("### Export (Hugging Face `datasets`: save_to_disk + Parquet)")
                self.export_name = gr.Textbox(label="Export name (optional)",
                                              placeholder="e.g. round-1; default: a timestamp")
                self.push_repo = gr.Textbox(label="Also push to Hub dataset repo (optional)",
                                            placeholder="user/my-prefs; needs HF_TOKEN in the app's environment")
                with gr.Row():
                    self.export_disagreement = gr.Dropdown(
                        list(DISAGREEMENT), value="majority", label="Annotators disagree on a pair",
                        info="majority: keep the majority answer (a split is dropped); drop: keep only agreed "
                             "pairs; all: every vote is a row")
                    self.export_both_bad = gr.Dropdown(
                        list(BOTH_BAD), value="drop", label="Both bad",
                        info="drop; written: keep it when the annotator wrote a better response")
                    self.export_written = gr.Dropdown(list(WRITTEN), value="use", label="Human-written responses",
                                                      info="use: it becomes chosen (marked human_written)")
                self.export_button = gr.Button("Export", variant="primary")
                self.export_result = gr.Textbox(label="Export result", interactive=False, lines=3)
            with gr.Column():
                gr.Markdown("### Add prompts")
                self.new_prompts = gr.Textbox(label="One prompt per line", lines=5)
                self.add_prompts_button = gr.Button("Add prompts")
                self.add_prompts_result = gr.Textbox(label="Result", interactive=False)
                gr.Markdown("### Import prompts (.txt, .jsonl, .csv, .parquet, or a Hugging Face dataset)")
                self.import_file = gr.File(label="Prompt file", type="filepath",
                                           file_types=[".txt", ".jsonl", ".csv", ".parquet"])
                self.import_source = gr.Textbox(label="...or a Hub dataset name, or a path under the data folder",
                                                placeholder="e.g. org/prompts or prompts/set.parquet")
                with gr.Row():
                    self.import_column = gr.Dropdown([], value=None, allow_custom_value=True, scale=2,
                                                     label="Prompt column (blank: prompt/messages/question/...)")
                    self.import_split = gr.Textbox("train", label="Split (Hub datasets)", scale=1)
                self.import_button = gr.Button("Import")
                self.import_result = gr.Textbox(label="Import result", interactive=False, lines=2)

    def _render_train_tab(self) -> None:
        d = self.service.config.train
        with gr.Row():
            self.beta = gr.Number(d.beta, label="beta (KL strength)")
            self.learning_rate = gr.Number(d.learning_rate, label="learning_rate")
            self.num_epochs = gr.Number(d.num_epochs, label="num_epochs")
            self.batch_size = gr.Number(d.batch_size, label="batch_size", precision=0)
        with gr.Row():
            self.max_length = gr.Number(d.max_length, label="max_length (tokens)", precision=0)
            self.lora_r = gr.Number(d.lora_r, label="lora_r (alpha = 2 x r)", precision=0)
            self.loss_type = gr.Dropdown(list(LOSS_TYPES), value=d.loss_type, label="loss_type")
        render_train_options(self)
        with gr.Row():
            self.start_button = gr.Button("Start training", variant="primary")
            self.cancel_button = gr.Button("Cancel", variant="stop")
        self.train_message = gr.Textbox(label="Training status", interactive=False)
        self.progress = gr.HTML(progress_html(None))
        with gr.Row():
            self.plot = gr.LinePlot(history_frame(None), x="step", y="value", color="metric",
                                    title="loss and rewards (chosen, rejected, margins, accuracies)", height=280,
                                    scale=3)
            self.metrics = gr.Dataframe(metrics_frame({}), label="Latest metrics", interactive=False, scale=1,
                                        max_height=300)
        self.rounds_table = gr.Dataframe(rounds_frame(self.service.rounds()), label="Rounds", interactive=False)
        render_round_ops(self)
        self.timer = gr.Timer(POLL_SECONDS, active=False)

    def _render_chat_tab(self) -> None:
        with gr.Row():
            self.aligned_pick = gr.Dropdown(label="Aligned model (a finished round)", scale=2,
                                            choices=self._round_choices(), value=self.service.aligned)
            self.use_aligned = gr.Button("Use the aligned model as the generator for new pairs", scale=2)
            self.use_base = gr.Button("Back to the base model as generator", scale=1)
        # Transcripts in read-only textboxes: gr.Chatbot renders (sanitized) HTML even with render_markdown=False,
        # so a reply containing <b> would show bold; a textbox shows exactly the characters the model wrote.
        with gr.Row(equal_height=True):
            self.base_chat = gr.Textbox(label="Base model", interactive=False, lines=14, max_lines=14,
                                        autoscroll=True)
            self.aligned_chat = gr.Textbox(label="Aligned model", interactive=False, lines=14, max_lines=14,
                                           autoscroll=True, placeholder=NO_ALIGNED)
        with gr.Row():
            self.message = gr.Textbox(label="Message to both models", scale=4, submit_btn=False)
            self.send = gr.Button("Send", variant="primary", scale=1)
            self.clear = gr.Button("Clear", scale=1)
        self.base_history = gr.State([])  # [{"role", "content"}] as the model saw it: small and copyable
        self.aligned_history = gr.State([])

    # --- wiring --------------------------------------------------------------------------------------------------

    def _setup_events(self) -> None:
        ui = dict(api_visibility="private")  # internal events; the API is the named functions of _setup_api
        pair_view = [self.pair_id, self.prompt, self.response_a, self.response_b, self.written_by, self.status,
                     self.my_votes, self.all_votes]

        self.blocks.load(self._on_load, None, [self.model_info, self.all_votes, self.temperature, self.top_p,
                         self.max_new_tokens, self.timer, self.aligned_pick], **ui)

        # One round trip per vote: record it and return the next pair (ready in the queue) in the same event.
        # No progress overlay: drawing it on every output cost more than the vote itself (the status line says
        # when the next pair is being generated).
        label = dict(**LABEL_CONCURRENCY, show_progress="hidden", **ui)
        vote_view = [*pair_view, self.reason, self.written, self.label_progress]
        gr.on([self.annotator.submit, self.annotator.blur], self._on_annotator, [self.annotator, self.pair_id],
              vote_view, **label)
        for choice, button in self.vote_buttons.items():
            button.click(partial(self._on_vote, choice), [self.pair_id, self.annotator, self.reason, self.written],
                         vote_view, **label)
        self.skip_button.click(self._on_next_pair, [self.annotator], vote_view, **label)
        self.undo_button.click(self._on_undo, [self.annotator], vote_view, **label)
        gr.on([self.quality_tab.select, self.quality_refresh.click], self._on_quality, None,
              [self.quality_summary, self.quality_annotators, self.quality_pairwise], **ui)
        self.apply_sampling.click(self._on_sampling, [self.temperature, self.top_p, self.max_new_tokens],
                                  [self.status], **ui)

        data_view = [self.data_counts, self.preview]
        gr.on([self.data_tab.select, self.refresh_data.click], self._on_data, None, data_view, **ui)
        self.export_button.click(self._on_export, [self.export_name, self.push_repo, self.export_disagreement,
                                 self.export_both_bad, self.export_written], [self.export_result], **ui
                                 ).success(self._on_data, None, data_view, **ui)
        self.add_prompts_button.click(self._on_add_prompts, [self.new_prompts], [self.add_prompts_result,
                                      self.new_prompts], **ui).success(self._on_data, None, data_view, **ui)
        import_in = [self.import_file, self.import_source, self.import_split]
        gr.on([self.import_file.change, self.import_source.submit], self._on_import_columns, import_in,
              [self.import_column], **ui)
        self.import_button.click(self._on_import, [*import_in, self.import_column], [self.import_result], **ui
                                 ).success(self._on_data, None, data_view, **ui)

        knobs = [self.beta, self.learning_rate, self.num_epochs, self.batch_size, self.max_length, self.lora_r,
                 self.loss_type, self.precompute_ref, self.save_steps]
        train_view = [self.train_message, self.progress, self.plot, self.metrics, self.rounds_table, self.timer,
                      self.aligned_pick, self.model_info]
        self.start_button.click(self._on_start, knobs, [self.train_message, self.timer, self.rounds_table], **ui)
        self.cancel_button.click(self._on_cancel, None, [self.train_message], **ui)
        gr.on([self.timer.tick, self.train_tab.select], self._on_poll, None, train_view, show_progress="hidden", **ui)
        setup_train_events(self, knobs, ui)

        chat_view = [self.base_chat, self.aligned_chat, self.base_history, self.aligned_history, self.message]
        gr.on([self.send.click, self.message.submit], self._on_chat,
              [self.message, self.base_history, self.aligned_history], chat_view, **ui)
        self.clear.click(self._on_clear_chat, None, chat_view, **ui)
        self.chat_tab.select(self._on_chat_tab, None, [self.aligned_pick, self.model_info], **ui)
        self.aligned_pick.input(self._on_pick_aligned, [self.aligned_pick], [self.model_info, *chat_view], **ui)
        self.use_aligned.click(partial(self._on_generator, "aligned"), None, [self.model_info], **ui)
        self.use_base.click(partial(self._on_generator, "base"), None, [self.model_info], **ui)

    def _setup_api(self) -> None:
        for name in API_NAMES:
            gr.api(getattr(self, f"api_{name}"), api_name=name, **(LABEL_CONCURRENCY if name in LABEL_API else {}))

    # --- handlers: thin adapters from events to the service ------------------------------------------------------

    def _on_load(self) -> Update:
        """A new page shows the shared state as it is now, not as it was when the app was built."""
        s = self.service.sampling
        return {self.model_info: model_text(self.service.model_info()), self.all_votes: self.service.counts().total,
                self.temperature: s.temperature, self.top_p: s.top_p, self.max_new_tokens: s.max_new_tokens,
                self.timer: gr.Timer(active=self._training_open()), self.aligned_pick: self._aligned_dropdown()}

    def _on_annotator(self, annotator: str, pair_id: str) -> Update:
        if not annotator.strip():
            return {self.status: "Enter your name to get the first pair."}
        if pair_id:  # a pair is already on screen; a changed name only changes who votes on it
            counts = self.service.counts(annotator)
            return {self.my_votes: counts.mine, self.all_votes: counts.total}
        with user_errors():
            pair = self.service.next_pair(annotator)
        return {**self._pair_update(pair, annotator), self.status: "Read the prompt and both responses, then pick."}

    def _on_next_pair(self, annotator: str) -> Iterator[Update]:
        if self.service.ready_pairs() == 0:  # the model must run first: say so instead of freezing
            yield {**self._blank_pair(), self.status: "No pair is ready yet: generating one now..."}
        with user_errors():
            pair = self.service.next_pair(annotator)
        yield {**self._pair_update(pair, annotator), self.status: f"Next pair: {source_text(pair.source)}."}

    def _on_vote(self, choice: str, pair_id: str, annotator: str, reason: str = "", written: str = ""
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

    def _on_undo(self, annotator: str) -> Update:
        with user_errors():
            pair = self.service.undo(annotator)
        if pair is None:
            return {self.status: "You have no vote to undo."}
        return {**self._pair_update(pair, annotator), self.status: f"Undone: {source_text(pair.source)}."}

    def _on_quality(self) -> Update:
        report = self.service.quality()
        labeling = self.service.config.labeling
        return {self.quality_summary: quality_markdown(report, labeling.overlap, labeling.probe_rate),
                self.quality_annotators: annotators_frame(report), self.quality_pairwise: pairwise_frame(report)}

    def _pair_update(self, pair: Any, annotator: str, counts: VoteCounts | None = None) -> Update:
        counts = counts or self.service.counts(annotator)
        return {self.pair_id: pair.pair_id, self.prompt: pair.prompt, self.response_a: pair.response_a,
                self.response_b: pair.response_b, self.written_by: pair.generator, self.my_votes: counts.mine,
                self.all_votes: counts.total, self.label_progress: progress_markdown(self.service.progress())}

    def _blank_pair(self) -> Update:
        return {self.pair_id: "", self.prompt: "", self.response_a: "", self.response_b: "", self.written_by: ""}

    def _on_sampling(self, temperature: float, top_p: float, max_new_tokens: int) -> str:
        with user_errors():
            s = self.service.set_sampling(temperature, top_p, max_new_tokens)
        return (f"Sampling set for everyone's next pair: temperature {s.temperature}, top_p {s.top_p}, "
                f"max_new_tokens {s.max_new_tokens}.")

    def _on_data(self) -> Update:
        summary = self.service.data_summary()
        counts = data_counts_markdown(summary.prompts, summary.counts, summary.pairs, summary.ties, summary.both_bad)
        preview = pd.DataFrame(summary.preview, columns=["prompt", "chosen", "rejected"])
        return {self.data_counts: counts, self.preview: preview}

    def _on_export(self, name: str, repo_id: str, disagreement: str = "majority", both_bad: str = "drop",
                   written: str = "use") -> str:
        return self.api_export(name, repo_id, disagreement, both_bad, written)

    def _on_add_prompts(self, text: str) -> Update:
        with user_errors():
            message = self.service.add_typed_prompts(text)
        return {self.add_prompts_result: message[:1].upper() + message[1:], self.new_prompts: ""}

    def _on_import_columns(self, file: str | None, source: str, split: str) -> gr.Dropdown:
        """Offer the source's columns to choose the prompt column from."""
        if not file and not (source or "").strip():
            return gr.Dropdown(choices=[], value=None)
        with user_errors():
            columns = self.service.prompt_columns(file or source, split or "train", uploaded=bool(file))
        return gr.Dropdown(choices=columns, value=None)

    def _on_import(self, file: str | None, source: str, split: str, column: str | None) -> str:
        if not file and not (source or "").strip():
            raise gr.Error("Choose a prompt file, or type a Hub dataset name or a path under the data folder.")
        with user_errors():
            message = self.service.import_prompt_source(file or source, column or None, split or "train",
                                                        uploaded=bool(file))
        return message[:1].upper() + message[1:]

    def _on_start(self, *knobs: Any) -> Update:
        message = self.api_train(*knobs)
        return {self.train_message: message, self.timer: gr.Timer(active=True),
                self.rounds_table: rounds_frame(self.service.rounds())}

    def _on_cancel(self) -> str:
        if self.service.cancel_training():
            return "Cancelling after the current step; the round will be marked cancelled."
        return "No training is running."

    def _on_poll(self) -> Update:
        progress = self.service.training_status()
        update = {self.progress: progress_html(progress), self.plot: history_frame(progress),
                  self.metrics: metrics_frame(progress.metrics if progress else {})}
        if progress is not None:
            update[self.train_message] = progress.message
        if not self._training_open():  # the round is over and recorded: stop polling, show what it produced
            update.update({self.timer: gr.Timer(active=False), self.rounds_table: rounds_frame(self.service.rounds()),
                           self.aligned_pick: self._aligned_dropdown(),
                           self.model_info: model_text(self.service.model_info())})
        return update

    def _on_chat(self, message: str, base_history: list[dict], aligned_history: list[dict]) -> Update:
        with user_errors():
            base, aligned = self.service.chat(base_history, aligned_history, message)
        turn = [{"role": "user", "content": message}]
        base_history = [*base_history, *turn, {"role": "assistant", "content": base}]
        if aligned is not None:
            aligned_history = [*aligned_history, *turn, {"role": "assistant", "content": aligned}]
        return {self.base_chat: transcript(base_history), self.aligned_chat: transcript(aligned_history),
                self.base_history: base_history, self.aligned_history: aligned_history, self.message: ""}

    def _on_clear_chat(self) -> Update:
        return {self.base_chat: "", self.aligned_chat: "", self.base_history: [], self.aligned_history: [],
                self.message: ""}

    def _on_chat_tab(self) -> Update:
        return {self.aligned_pick: self._aligned_dropdown(), self.model_info: model_text(self.service.model_info())}

    def _on_pick_aligned(self, adapter: str | None) -> Update:
        with user_errors():
            self.service.set_aligned(adapter)
        # The aligned side's history came from another adapter: start both sides afresh.
        return {self.model_info: model_text(self.service.model_info()), **self._on_clear_chat()}

    def _on_generator(self, which: Literal["aligned", "base"]) -> str:
        if which == "aligned" and self.service.aligned is None:
            raise gr.Error("There is no aligned model yet: train a round in the Train tab first.")
        message = self.api_set_generator(self.service.aligned if which == "aligned" else "base")
        gr.Info(toast_text(message))
        return model_text(self.service.model_info())

    # --- helpers -------------------------------------------------------------------------------------------------

    def _round_choices(self) -> list[str]:
        names = list(self.service.policy.adapters)  # copy: training may add one from its thread
        return sorted(names, key=lambda n: (len(n), n))

    def _aligned_dropdown(self) -> gr.Dropdown:
        return gr.Dropdown(choices=self._round_choices(), value=self.service.aligned)

    def _training_open(self) -> bool:
        return self.service.training_running()

    # --- the named API (gradio_client: Client(url).predict(..., api_name="/vote")) ------------------------------

    def api_next_pair(self, annotator: str) -> tuple[str, str, str, str]:
        """Two new responses to the least-labelled prompt for `annotator`: (pair_id, prompt, response_a, response_b)."""
        with user_errors():
            pair = self.service.next_pair(annotator)
        return pair.pair_id, pair.prompt, pair.response_a, pair.response_b

    def api_vote(self, pair_id: str, choice: Literal["A", "B", "tie", "both_bad"], annotator: str) -> str:
        """Record `annotator`'s choice for a pair (A, B, tie or both_bad); a repeated vote changes nothing."""
        with user_errors():
            return self.service.vote(pair_id, choice, annotator).message

    def api_undo(self, annotator: str) -> tuple[str, str, str, str]:
        """Take back `annotator`'s last vote: the pair it was on, to vote again (pair_id, prompt, response_a,
        response_b)."""
        with user_errors():
            pair = self.service.undo(annotator)
        if pair is None:
            raise gr.Error(f"{annotator.strip() or 'This annotator'} has no vote to undo.", print_exception=False)
        return pair.pair_id, pair.prompt, pair.response_a, pair.response_b

    def api_add_prompts(self, text: str) -> str:
        """Add prompts, one per line; duplicates and blank lines are skipped and counted."""
        with user_errors():
            return self.service.add_typed_prompts(text)

    def api_import_prompts(self, source: str, column: str = "", split: str = "train") -> str:
        """Import prompts from a file under the data folder (.txt, .csv, .jsonl, .parquet, a saved dataset) or a
        Hub dataset name; `column` picks the prompt column (empty: guessed)."""
        with user_errors():
            return self.service.import_prompt_source(source.strip(), column.strip() or None, split or "train")

    def api_quality(self) -> dict:
        """The Quality tab's figures: per-annotator stats, agreement (percent, Fleiss' and Cohen's kappa), probes."""
        return asdict(self.service.quality())

    def api_export(self, name: str = "", push_to: str = "", disagreement: str = "majority", both_bad: str = "drop",
                   written: str = "use") -> str:
        """Export the votes as a datasets dataset (save_to_disk + Parquet), resolving disagreements (majority, drop,
        all), both-bad (drop, written) and human-written responses (use, ignore); optionally push it to the Hub."""
        with user_errors():
            options = ExportOptions(disagreement, both_bad, written)
            result = self.service.export(name.strip() or None, options)
        c = result.counts
        message = (f"Exported {c.pairs} pairs to {result.dataset_dir} and {result.parquet_path} "
                   f"(left out: {c.ties} ties, {c.both_bad} both bad; {c.votes} votes in all).")
        if result.detail:
            message += f"\n{result.detail}"
        if push_to.strip():
            from prefapp.preferences.export import push_to_hub

            try:
                url = push_to_hub(result.dataset_dir, push_to.strip())
            except ValueError as exc:  # offline, no token, no access: the export itself is saved
                gr.Warning(toast_text(exc))
                return f"{message}\nPush failed: {exc}"
            message += f"\nPushed to {url}."
        return message

    def api_train(
        self, beta: float = TrainConfig.beta, learning_rate: float = TrainConfig.learning_rate,
        num_epochs: float = TrainConfig.num_epochs, batch_size: int = TrainConfig.batch_size,
        max_length: int = TrainConfig.max_length, lora_r: int = TrainConfig.lora_r,
        loss_type: str = TrainConfig.loss_type, precompute_ref_log_probs: bool = False,
        save_steps: int = TrainConfig.save_steps,
    ) -> str:
        """Export the current votes and start a DPO LoRA round in the background; poll /train_status."""
        with user_errors():
            config = self.knobs_config(beta, learning_rate, num_epochs, batch_size, max_length, lora_r, loss_type,
                                       precompute_ref_log_probs, save_steps)
            round_id = self.service.start_training(config)
        n_pairs = next((r.n_pairs for r in self.service.rounds() if r.id == round_id), "?")
        return f"Round {round_id} started on {n_pairs} pairs; labelling can go on meanwhile."

    def knobs_config(self, beta: float, learning_rate: float, num_epochs: float, batch_size: int, max_length: int,
                     lora_r: int, loss_type: str, precompute_ref_log_probs: bool = False,
                     save_steps: int = TrainConfig.save_steps) -> TrainConfig:
        """The Train tab's knobs (in this order) over the app's defaults."""
        return train_config(self.service.config.train, beta=beta, learning_rate=learning_rate, num_epochs=num_epochs,
                            batch_size=batch_size, max_length=max_length, lora_r=lora_r, loss_type=loss_type,
                            precompute_ref_log_probs=bool(precompute_ref_log_probs), save_steps=save_steps)

    def api_train_status(self) -> dict:
        """The latest training progress: state, step, total_steps, epoch, elapsed_s, eta_s, metrics, message."""
        service = self.service
        return status_dict(service.training_status(), service.training_running(), service.rounds())

    def api_chat(self, message: str) -> tuple[str, str]:
        """One message to the base and the aligned model: (base_reply, aligned_reply; '' when no round is trained)."""
        with user_errors():
            base, aligned = self.service.chat([], [], message)
        return base, aligned or ""

    def api_set_generator(self, which: str) -> str:
        """Make a finished round (e.g. 'round-1' or '1') or 'base' the model that writes new pairs."""
        with user_errors():
            return self.service.set_generator(round_name(which))


def build_ui(service: PrefService, accounts: Access | None = None) -> gr.Blocks:
    """The app's Blocks around `service`, not launched; with `accounts`, every event checks the user's role."""
    return PrefUI(service, accounts).blocks


def launch(config: AppConfig) -> None:
    """Open the service (model, store), build the UI and serve it on config.host:config.port until stopped."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    install_log_redaction()  # Hub tokens never reach the log, whoever logs them
    accounts = access_from_env(config.users_file)
    check_bind(config.host, accounts is not None, config.allow_public)  # before the slow model load
    options = launch_options(accounts)  # the login guard, route doors and upload limit (prefapp.hosting.routes)
    stop_on_signals()  # SIGTERM stops as Ctrl-C does, so the store below is closed and checkpointed
    service = PrefService.open(config)
    log.info("serving %s on http://%s:%d (%s)", service.model_info().label, config.host, config.port,
             accounts.summary() if accounts else "open, no accounts")
    try:
        build_ui(service, accounts).queue().launch(server_name=config.host, server_port=config.port, **options)
    finally:
        service.close()
