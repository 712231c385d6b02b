"""The Train tab (admin): the DPO knobs, preflight before a start, live progress (bar, plot, latest metrics), the
rounds table and the round operations (resume, make generator, roll back, merge, push).

Text a model or an annotator wrote (the tokenized preview) is shown only in a read-only Textbox; the Markdown holds
counts and our own messages.
"""

import html
from dataclasses import replace
from typing import Any, Callable

import gradio as gr
import pandas as pd

from prefapp.config import TRAIN_METHODS, ConfigError, TrainConfig
from prefapp.evaluation.gate import GateRefused
from prefapp.preferences.resolve import SOURCES, ExportOptions
from prefapp.service import PrefService
from prefapp.store import Round
from prefapp.training.dpo import LOSS_TYPES
from prefapp.training.preflight import PreflightReport
from prefapp.training.progress import TrainProgress
from prefapp.ui.access import ADMIN, current_user, on, page_load
from prefapp.ui.chat_tab import ChatTab, unconfirmed
from prefapp.ui.data_tab import EVAL_VOTES_LABEL
from prefapp.ui.common import PRIVATE, Update, aligned_dropdown, model_text, rounds_frame, user_errors
from prefapp.ui.header import Header

POLL_SECONDS = 2.0  # training progress refresh; one step of the demo model takes about a second on a laptop CPU
ENDED = ("finished", "failed", "cancelled")
METRICS_PLOTTED = ("loss", "rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies")
NOT_CHECKED = "Press **Check settings** to run the preflight: data counts, truncation, memory and settings."
KNOBS = ("beta", "learning_rate", "num_epochs", "batch_size", "max_length", "lora_r", "loss_type",
         "precompute_ref_log_probs", "save_steps", "method")  # the tab's inputs and /train's parameters, in order


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


def train_config(base: TrainConfig, **knobs: Any) -> TrainConfig:
    """The UI's knobs over the app's defaults; an emptied field is named instead of crashing in int()."""
    for name, value in knobs.items():
        if value is None or value == "":
            raise ConfigError(f"{name} is empty: enter a value (default {getattr(base, name)})")
    ints = {"batch_size", "max_length", "lora_r", "save_steps"}

    def typed_value(name: str, value: Any) -> Any:
        if name in ints:
            return int(value)
        return str(value) if name in ("loss_type", "method") else (value if isinstance(value, bool) else float(value))

    typed = {k: typed_value(k, v) for k, v in knobs.items()}
    # lora_alpha follows lora_r (2x, as the CLI does), so changing the rank does not silently change the scale.
    return replace(base, **typed).with_rank(typed.get("lora_r", base.lora_r))


def knobs_config(service: PrefService, *values: Any) -> TrainConfig:
    """The Train tab's knobs (in KNOBS order) over the app's defaults."""
    knobs = dict(zip(KNOBS, values))
    knobs["precompute_ref_log_probs"] = bool(knobs.get("precompute_ref_log_probs", False))
    return train_config(service.config.train, **knobs)


def data_options(sources: str = "votes", imported_share: float | None = None, eval_votes: bool = False
                 ) -> ExportOptions:
    """Which rows a round trains on: the app's votes, imported pairs, or both (imported capped at a share), and
    (an admin's opt-in) the decided eval votes."""
    return ExportOptions(sources=sources or "votes", imported_share=imported_share or None,
                         eval_votes=bool(eval_votes))


def start_message(service: PrefService, *values: Any, options: ExportOptions | None = None) -> str:
    """Export the current preferences and start a round in the background; what to tell the user."""
    with user_errors():
        config = knobs_config(service, *values)
        round_id = service.start_training(config, options=options)
    n_pairs = next((r.n_pairs for r in service.rounds() if r.id == round_id), "?")
    what = "labelled completions (KTO)" if config.method == "kto" else "pairs"
    return f"Round {round_id} started on {n_pairs} {what}; labelling can go on meanwhile."


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


def report_markdown(report: PreflightReport) -> str:
    """The preflight report without the example (that goes to a read-only textbox: it holds model/annotator text)."""
    return report.markdown(include_preview=False)


class TrainTab:
    """Train a round and act on the rounds; the header's model line and the chat's round picker follow them."""

    def __init__(self, service: PrefService, header: Header, chat: ChatTab) -> None:
        self.service = service
        self.header, self.chat = header, chat

    def render(self) -> None:
        d = self.service.config.train
        with gr.Tab("Train") as self.tab:
            with gr.Row():
                self.beta = gr.Number(d.beta, label="beta (KL strength)")
                self.learning_rate = gr.Number(d.learning_rate, label="learning_rate")
                self.num_epochs = gr.Number(d.num_epochs, label="num_epochs")
                self.batch_size = gr.Number(d.batch_size, label="batch_size", precision=0)
            with gr.Row():
                self.max_length = gr.Number(d.max_length, label="max_length (tokens)", precision=0)
                self.lora_r = gr.Number(d.lora_r, label="lora_r (alpha = 2 x r)", precision=0)
                self.loss_type = gr.Dropdown(list(LOSS_TYPES), value=d.loss_type, label="loss_type (DPO)")
                self.method = gr.Radio(list(TRAIN_METHODS), value=d.method, label="Method: DPO on pairs, or KTO on "
                                       "every labelled completion (pairs, chat thumbs, both-bad, written)")
            self._render_options()
            with gr.Row():
                self.sources = gr.Dropdown(list(SOURCES), value="votes", label="Train on",
                                           info="votes: the app's human votes; imported: imported pairs; both")
                self.imported_share = gr.Number(0, label="Cap on the imported share (0: none)", minimum=0, maximum=1)
                self.eval_votes = gr.Checkbox(False, label=EVAL_VOTES_LABEL)
            with gr.Row():
                self.start_button = gr.Button("Start training", variant="primary")
                self.cancel_button = gr.Button("Cancel", variant="stop")
            self.message = gr.Textbox(label="Training status", interactive=False)
            self.progress = gr.HTML(progress_html(None))
            with gr.Row():
                self.plot = gr.LinePlot(history_frame(None), x="step", y="value", color="metric",
                                        title="loss and rewards (chosen, rejected, margins, accuracies)", height=280,
                                        scale=3)
                self.metrics = gr.Dataframe(metrics_frame({}), label="Latest metrics", interactive=False, scale=1,
                                            max_height=300)
            # Empty in the page config, which every visitor reads: an admin's page load fills it (on_load).
            self.rounds_table = gr.Dataframe(rounds_frame([]), label="Rounds", interactive=False)
            self._render_round_ops()
            self.timer = gr.Timer(POLL_SECONDS, active=False)

    def _render_options(self) -> None:
        """Below the DPO knobs: checkpointing and reference options, and the preflight report."""
        d = self.service.config.train
        with gr.Row():
            self.precompute_ref = gr.Checkbox(d.precompute_ref_log_probs, label="precompute reference log-probs "
                                              "(one pass before training; with LoRA the reference is the base, "
                                              "adapter off)")
            self.save_steps = gr.Number(d.save_steps, label="checkpoint every N steps (0: only on cancel)",
                                        precision=0)
            self.preflight_button = gr.Button("Check settings (preflight)")
        with gr.Accordion("Preflight", open=True):
            self.preflight_report = gr.Markdown(NOT_CHECKED)
            self.preflight_preview = gr.Textbox(label="One example exactly as the model reads it (chat template "
                                                "applied)", interactive=False, lines=4, max_lines=12)

    def _render_round_ops(self) -> None:
        """Below the rounds table: act on one round."""
        with gr.Row():
            self.round_pick = gr.Number(1, label="Round (number in the table)", precision=0, minimum=1, scale=1)
            self.resume_button = gr.Button("Resume (from its checkpoint)", scale=1)
            self.make_generator_button = gr.Button("Make generator (hot swap)", variant="primary", scale=1)
            self.confirm_gate = gr.Checkbox(False, label="Confirm: make it the generator even if judged worse or "
                                            "flagged (recorded)", scale=1)
            self.rollback_button = gr.Button("Roll back generator", scale=1)
            self.merge_button = gr.Button("Merge into a full model", scale=1)
        with gr.Row():
            self.push_round_repo = gr.Textbox(label="Hub model repo (owner/name; token from HF_TOKEN)", scale=3,
                                              placeholder="alice/prefapp-round-1", max_length=200)
            self.push_round_button = gr.Button("Push adapter + model card", scale=1)
        with gr.Row():
            self.add_round_dir = gr.Textbox(label="Adapter folder trained elsewhere (a path under the data folder)",
                                            placeholder="adapters/cli-run-20260101-120000", scale=3, max_length=500)
            self.add_round_button = gr.Button("Add as a round (checks its base model)", scale=1)
        self.round_result = gr.Textbox(label="Round operation", interactive=False)

    @property
    def admin_only(self) -> list:
        return [self.tab]

    @property
    def knobs(self) -> list:
        return [self.beta, self.learning_rate, self.num_epochs, self.batch_size, self.max_length, self.lora_r,
                self.loss_type, self.precompute_ref, self.save_steps, self.method]

    def events(self) -> None:
        model_info, aligned_pick = self.header.model_info, self.chat.aligned_pick
        view = [self.message, self.progress, self.plot, self.metrics, self.rounds_table, self.timer, aligned_pick,
                model_info]
        on(page_load(), self.on_load, None, [self.timer, self.rounds_table], role=ADMIN, **PRIVATE)
        data = [self.sources, self.imported_share, self.eval_votes]
        on(self.start_button.click, self.on_start, [*self.knobs, *data], [self.message, self.timer,
           self.rounds_table], role=ADMIN, **PRIVATE)
        on(self.cancel_button.click, self.on_cancel, None, [self.message], role=ADMIN, **PRIVATE)
        on([self.timer.tick, self.tab.select], self.on_poll, None, view, show_progress="hidden", role=ADMIN,
           **PRIVATE)
        on(self.preflight_button.click, self.on_preflight, [*self.knobs, *data], [self.preflight_report,
           self.preflight_preview], role=ADMIN, **PRIVATE)
        ops = [self.round_result, self.rounds_table, model_info, aligned_pick]
        resumed = on(self.resume_button.click, self._round_op(self.resume), [self.round_pick], ops, role=ADMIN,
                     **PRIVATE)
        on(resumed.success, lambda: gr.Timer(active=True), None, [self.timer], role=ADMIN, **PRIVATE)
        for button, op in ((self.rollback_button, self.rollback), (self.merge_button, self.merge)):
            on(button.click, self._round_op(op), [self.round_pick], ops, role=ADMIN, **PRIVATE)
        on(self.add_round_button.click, self.on_add_round, [self.add_round_dir], ops, role=ADMIN, **PRIVATE)
        # The promotion gate: the round's verdict and checks decide; a refusal is overridden only when confirmed.
        # The box is cleared by a second event, not as an output: a refusal's error overlay would cover it.
        promoted = on(self.make_generator_button.click, self._round_op(self.make_generator), [self.round_pick,
                      self.confirm_gate], ops, role=ADMIN, **PRIVATE)
        on(promoted.success, unconfirmed, None, [self.confirm_gate], role=ADMIN, **PRIVATE)
        on(self.push_round_button.click, self.on_push, [self.round_pick, self.push_round_repo], [self.round_result],
           role=ADMIN, **PRIVATE)

    # --- handlers ------------------------------------------------------------------------------------------------

    def on_load(self) -> Update:
        return {self.timer: gr.Timer(active=self.service.training_running()),
                self.rounds_table: self._rounds_frame()}

    def on_start(self, *values: Any) -> Update:
        *knobs, sources, share, eval_votes = values
        message = start_message(self.service, *knobs, options=data_options(sources, share, eval_votes))
        return {self.message: message, self.timer: gr.Timer(active=True),
                self.rounds_table: self._rounds_frame()}

    def on_cancel(self) -> str:
        if self.service.cancel_training():
            return "Cancelling after the current step; the round will be marked cancelled."
        return "No training is running."

    def on_poll(self) -> Update:
        progress = self.service.training_status()
        update = {self.progress: progress_html(progress), self.plot: history_frame(progress),
                  self.metrics: metrics_frame(progress.metrics if progress else {})}
        if progress is not None:
            update[self.message] = progress.message
        if not self.service.training_running():  # the round is over and recorded: stop polling, show its result
            update.update({self.timer: gr.Timer(active=False), **self._rounds_changed()})
        return update

    def on_preflight(self, *values: Any) -> Update:
        *knobs, sources, share, eval_votes = values
        options = data_options(sources, share, eval_votes)
        with user_errors():
            config = knobs_config(self.service, *knobs)
            if config.method == "kto":  # counts by source, balance and weights, truncation (prefapp.training.kto)
                return {self.preflight_report: self.service.preflight_kto(config, options).markdown(),
                        self.preflight_preview: ""}
            report = self.service.preflight(config, options=options)
        return {self.preflight_report: report_markdown(report), self.preflight_preview: report.preview}

    def _rounds_frame(self) -> pd.DataFrame:
        """The rounds table with each finished round's verdict and automatic checks."""
        return rounds_frame(self.service.rounds(), self.service.round_evaluations())

    def _rounds_changed(self) -> Update:
        return {self.rounds_table: self._rounds_frame(), self.chat.aligned_pick: aligned_dropdown(
            self.service), self.header.model_info: model_text(self.service.model_info())}

    def _round_op(self, op: Callable[..., str]) -> Callable[..., Update]:
        """A round operation as a handler: its message, then the rounds table and the model lines refreshed."""
        def on_round_op(round_id: float | None, *confirm: bool) -> Update:
            with user_errors():
                if op != self.rollback and not round_id:
                    raise ConfigError("enter a round number from the Rounds table first")
                message = op(round_id, *confirm)
            return {self.round_result: message, **self._rounds_changed()}
        on_round_op.__name__, on_round_op.__qualname__ = f"on_{op.__name__}", f"TrainTab.on_{op.__name__}"
        return on_round_op

    def resume(self, round_id: float | None) -> str:
        self.service.resume_training(int(round_id or 0))
        return f"Round {int(round_id or 0)} resumes from its last checkpoint; watch it above."

    def make_generator(self, round_id: float | None, confirm: bool = False) -> str:
        """Through the promotion gate: shows the verdict and checks, refuses a worse or degenerate round unless
        confirmed (the confirmation and the admin are recorded)."""
        try:
            return self.service.make_generator(int(round_id or 0), confirm=bool(confirm), admin=current_user())
        except GateRefused as refused:
            raise GateRefused(refused.decision, "To override: tick Confirm beside Make generator and press it again.") \
                from None

    def rollback(self, round_id: float | None) -> str:
        return self.service.rollback()

    def merge(self, round_id: float | None) -> str:
        return f"Merged model saved to {self.service.merge_round(int(round_id or 0))}"

    def on_add_round(self, adapter_dir: str) -> Update:
        """Register an adapter folder trained elsewhere as the next round, after the base-model check."""
        with user_errors():
            if not (adapter_dir or "").strip():
                raise ConfigError("enter the adapter folder (it holds adapter_config.json), under the data folder")
            rnd = self.service.add_round(adapter_dir.strip())
        message = f"Round {rnd.id} added from {rnd.adapter_path}; the chat compares the base with it now."
        return {self.round_result: message, **self._rounds_changed()}

    def on_push(self, round_id: float | None, repo: str) -> str:
        with user_errors():
            if not round_id:
                raise ConfigError("enter a round number from the Rounds table first")
            return f"Pushed: {self.service.push_round(int(round_id), repo)}"
