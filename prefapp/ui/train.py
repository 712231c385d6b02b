"""The Train tab's safety and closed-loop parts: preflight before a start, resume, and the round operations
(make generator, roll back, merge, push). Layout and thin handlers; `PrefUI` (prefapp.ui.app) calls the two render
functions inside its Train tab and `setup_train_events` from its wiring. Every event here sits in the Train tab, so
with accounts it needs the admin role (ui_access fails closed).

Text a model or an annotator wrote (the tokenized preview) is shown only in a read-only Textbox; the Markdown holds
counts and our own messages.
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from prefapp.config import ConfigError
from prefapp.training.preflight import PreflightReport

NOT_CHECKED = "Press **Check settings** to run the preflight: data counts, truncation, memory and settings."


def render_train_options(ui: Any) -> None:
    """Below the DPO knobs: checkpointing and reference options, and the preflight report."""
    d = ui.service.config.train
    with gr.Row():
        ui.precompute_ref = gr.Checkbox(d.precompute_ref_log_probs, label="precompute reference log-probs "
                                        "(one pass before training; with LoRA the reference is the base, adapter off)")
        ui.save_steps = gr.Number(d.save_steps, label="checkpoint every N steps (0: only on cancel)", precision=0)
        ui.preflight_button = gr.Button("Check settings (preflight)")
    with gr.Accordion("Preflight", open=True):
        ui.preflight_report = gr.Markdown(NOT_CHECKED)
        ui.preflight_preview = gr.Textbox(label="One example exactly as the model reads it (chat template applied)",
                                          interactive=False, lines=4, max_lines=12)


def render_round_ops(ui: Any) -> None:
    """Below the rounds table: act on one round."""
    with gr.Row():
        ui.round_pick = gr.Number(1, label="Round (number in the table)", precision=0, minimum=1, scale=1)
        ui.resume_button = gr.Button("Resume (from its checkpoint)", scale=1)
        ui.make_generator_button = gr.Button("Make generator (hot swap)", variant="primary", scale=1)
        ui.rollback_button = gr.Button("Roll back generator", scale=1)
        ui.merge_button = gr.Button("Merge into a full model", scale=1)
    with gr.Row():
        ui.push_round_repo = gr.Textbox(label="Hub model repo (owner/name; token from HF_TOKEN)", scale=3,
                                        placeholder="alice/prefapp-round-1", max_length=200)
        ui.push_round_button = gr.Button("Push adapter + model card", scale=1)
    ui.round_result = gr.Textbox(label="Round operation", interactive=False)


def setup_train_events(ui: Any, knobs: list, queue_opts: dict) -> None:
    """Wire preflight and the round operations; `knobs` are the Train tab's inputs in api_train's order."""
    from prefapp.ui.common import model_text, rounds_frame, user_errors

    def on_preflight(*values: Any) -> dict:
        with user_errors():
            report = ui.service.preflight(ui.knobs_config(*values))
        return {ui.preflight_report: report_markdown(report), ui.preflight_preview: report.preview}

    def after(op) -> Any:
        def handler(round_id: float | None) -> dict:
            with user_errors():
                if op.__name__ != "rollback" and not round_id:
                    raise ConfigError("enter a round number from the Rounds table first")
                message = op(round_id)
            return {ui.round_result: message, ui.rounds_table: rounds_frame(ui.service.rounds()),
                    ui.model_info: model_text(ui.service.model_info()), ui.aligned_pick: ui._aligned_dropdown()}
        handler.__name__ = f"_on_round_{op.__name__}"
        return handler

    def resume(round_id: float) -> str:
        ui.service.resume_training(int(round_id))
        return f"Round {int(round_id)} resumes from its last checkpoint; watch it above."

    def make_generator(round_id: float) -> str:
        return ui.service.make_generator(int(round_id))

    def rollback(round_id: float | None) -> str:
        return ui.service.rollback()

    def merge(round_id: float) -> str:
        return f"Merged model saved to {ui.service.merge_round(int(round_id))}"

    outputs = [ui.round_result, ui.rounds_table, ui.model_info, ui.aligned_pick]
    ui.preflight_button.click(on_preflight, knobs, [ui.preflight_report, ui.preflight_preview], **queue_opts)
    ui.resume_button.click(after(resume), [ui.round_pick], outputs, **queue_opts).success(
        lambda: gr.Timer(active=True), None, [ui.timer], **queue_opts)
    ui.make_generator_button.click(after(make_generator), [ui.round_pick], outputs, **queue_opts)
    ui.rollback_button.click(after(rollback), [ui.round_pick], outputs, **queue_opts)
    ui.merge_button.click(after(merge), [ui.round_pick], outputs, **queue_opts)

    def on_push(round_id: float | None, repo: str) -> str:
        with user_errors():
            if not round_id:
                raise ConfigError("enter a round number from the Rounds table first")
            return f"Pushed: {ui.service.push_round(int(round_id), repo)}"

    ui.push_round_button.click(on_push, [ui.round_pick, ui.push_round_repo], [ui.round_result], **queue_opts)


def report_markdown(report: PreflightReport) -> str:
    """The preflight report without the example (that goes to a read-only textbox: it holds model/annotator text)."""
    return report.markdown(include_preview=False)
