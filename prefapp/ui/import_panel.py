"""The Data tab's *Import preference pairs* panel (admin): a file, a saved dataset or a Hub dataset is read and its
format detected; the detected format and three parsed rows are shown before anything is written; *Import* stores
them in one transaction (a re-import adds nothing); the imported pairs are counted by source.

Parsed rows are text a stranger wrote: they are shown only in a read-only Dataframe, never as Markdown.
"""

import json

import gradio as gr
import pandas as pd

from prefapp.preferences.formats import FORMATS
from prefapp.preferences.pair_import import ImportReport, Parsed
from prefapp.service import PrefService
from prefapp.ui.access import ADMIN, on
from prefapp.ui.common import PRIVATE, Update, user_errors

FORMAT_CHOICES = ["auto", *FORMATS]
SAMPLE_COLUMNS = ["row", "prompt", "chosen / completion", "rejected / label"]


def sample_frame(parsed: Parsed) -> pd.DataFrame:
    """The first parsed rows as the store will keep them (a multi-turn prompt as role: content lines)."""
    rows = []
    for item in parsed.sample():
        prompt = "\n".join(f"{m['role']}: {m['content']}" for m in item["prompt"])
        second = item["rejected"] if "rejected" in item else ("desirable" if item["label"] else "undesirable")
        rows.append([item["row"], prompt, item.get("chosen", item.get("completion")), second])
    return pd.DataFrame(rows, columns=SAMPLE_COLUMNS)


def preview_text(parsed: Parsed) -> str:
    skipped = sum(parsed.skipped_by_reason().values())
    kind = "pairs" if parsed.paired else "labelled completions (stored as single-sided feedback)"
    return (f"{parsed.source.name}: detected format {parsed.format} ({FORMATS[parsed.format].label}; "
            f"{parsed.why}). {len(parsed.source.rows)} rows -> {len(parsed.items)} {kind}, {skipped} to skip"
            + (f" ({json.dumps(parsed.skipped_by_reason())})" if skipped else "")
            + ". Nothing is written until you press Import.")


def report_text(report: ImportReport) -> str:
    return report.summary()


def counts_frame(counts: dict[str, int]) -> pd.DataFrame:
    return pd.DataFrame([[source, n] for source, n in counts.items()], columns=["source", "imported pairs"])


class ImportPairsPanel:
    """Import preference pairs: preview first, then one transaction."""

    def __init__(self, service: PrefService) -> None:
        self.service = service

    def render(self) -> None:
        gr.Markdown("### Import preference pairs (TRL, hh-rlhf, ShareGPT, UltraFeedback, OpenAssistant, KTO)")
        self.file = gr.File(label="Preference file", type="filepath",
                            file_types=[".json", ".jsonl", ".csv", ".parquet"])
        self.source = gr.Textbox(label="...or a Hub dataset id, or a path under the data folder",
                                 placeholder="e.g. org/preferences or imports/pairs.jsonl")
        with gr.Row():
            self.format = gr.Dropdown(FORMAT_CHOICES, value="auto", label="Format (auto: detected)")
            self.split = gr.Textbox("train", label="Split (Hub datasets, saved dataset dicts)")
        with gr.Row():
            self.preview_button = gr.Button("Preview")
            self.import_button = gr.Button("Import pairs", variant="primary")
        self.status = gr.Textbox(label="Detected format and result", interactive=False, lines=3)
        self.sample = gr.Dataframe(label="Parsed rows (first three), as they will be stored", headers=SAMPLE_COLUMNS,
                                   datatype="str", interactive=False, wrap=True, max_height=300)
        self.counts = gr.Dataframe(label="Imported pairs by source", headers=["source", "imported pairs"],
                                   interactive=False)

    def events(self):
        """Wire preview and import; returns the import's dependency, for the Data tab to refresh its counts."""
        inputs = [self.file, self.source, self.split, self.format]
        on([self.file.change, self.source.submit, self.preview_button.click], self.on_preview, inputs,
           [self.status, self.sample], role=ADMIN, **PRIVATE)
        return on(self.import_button.click, self.on_import, inputs, [self.status, self.counts], role=ADMIN, **PRIVATE)

    def on_preview(self, file: str | None, source: str, split: str, format: str) -> Update:
        if not file and not (source or "").strip():
            return {self.status: "", self.sample: pd.DataFrame(columns=SAMPLE_COLUMNS)}
        with user_errors():
            parsed = self.service.preview_import(file or source, split or "train", format or "auto",
                                                 uploaded=bool(file))
        return {self.status: preview_text(parsed), self.sample: sample_frame(parsed)}

    def on_import(self, file: str | None, source: str, split: str, format: str) -> Update:
        if not file and not (source or "").strip():
            raise gr.Error("Choose a preference file, or type a Hub dataset id or a path under the data folder.")
        with user_errors():
            report = self.service.import_preferences(file or source, split or "train", format or "auto",
                                                     uploaded=bool(file))
        return {self.status: report_text(report), self.counts: counts_frame(self.service.imported_counts())}
