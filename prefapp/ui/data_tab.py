"""The Data tab (admin): vote counts, a preview of the DPO dataset, export (with the disagreement, both-bad,
written-response and eval-vote options), adding prompts by hand and importing them from a file or a Hub dataset, for
labelling or as the held-out eval set."""

import gradio as gr
import pandas as pd

from prefapp.preferences.resolve import BOTH_BAD, DISAGREEMENT, SOURCES, WRITTEN, ExportOptions
from prefapp.service import PrefService
from prefapp.store import VoteCounts
from prefapp.ui.access import ADMIN, on
from prefapp.ui.import_panel import ImportPairsPanel, counts_frame
from prefapp.ui.common import PRIVATE, Update, capitalized, toast_text, user_errors


EVAL_VOTES_LABEL = ("Also use the Evaluate tab's decided votes (A/B on held-out prompts; off: eval votes only judge "
                    "rounds). Rows are marked origin=eval")


def data_counts_markdown(prompts: int, counts: VoteCounts, pairs: int, ties: int, both_bad: int,
                         imported: dict[str, int] | None = None, eval_prompts: int = 0) -> str:
    by = counts.by_choice
    text = (
        f"**{prompts}** prompts (and **{eval_prompts}** eval prompts, held out: never labelled) - "
        f"**{counts.total}** votes (A {by.get('A', 0)}, B {by.get('B', 0)}, "
        f"tie {by.get('tie', 0)}, both bad {by.get('both_bad', 0)}) - **{pairs}** DPO pairs; "
        f"left out of training: {ties} ties, {both_bad} both bad."
    )
    if imported:  # source names are file names or Hub ids: counted here, listed in the import panel's table
        text += f" **{sum(imported.values())}** imported pairs from {len(imported)} source(s)."
    return text


def export_message(service: PrefService, name: str = "", push_to: str = "", disagreement: str = "majority",
                   both_bad: str = "drop", written: str = "use", sources: str = "votes",
                   imported_share: float | None = None, eval_votes: bool = False) -> str:
    """Export the votes and say where they went; a failed push is reported, the export itself stays saved."""
    with user_errors():
        options = ExportOptions(disagreement, both_bad, written, sources, imported_share or None, bool(eval_votes))
        result = service.export(name.strip() or None, options)
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


class DataTab:
    """What the votes add up to, and the ways data gets in and out."""

    def __init__(self, service: PrefService) -> None:
        self.service = service
        self.pairs_import = ImportPairsPanel(service)

    def render(self) -> None:
        with gr.Tab("Data") as self.tab:
            self.counts = gr.Markdown()
            self.preview = gr.Dataframe(label="Preview of the DPO dataset (first rows)", datatype="str",
                                        headers=["prompt", "chosen", "rejected"], interactive=False, wrap=True,
                                        max_height=400, column_widths=["24%", "38%", "38%"])  # all three in view
            self.refresh = gr.Button("Refresh")
            with gr.Row():
                with gr.Column():
                    self._render_export()
                with gr.Column():
                    self._render_prompts()
            self.pairs_import.render()

    def _render_export(self) -> None:
        gr.Markdown("### Export (Hugging Face `datasets`: save_to_disk + Parquet)")
        self.export_name = gr.Textbox(label="Export name (optional)", placeholder="e.g. round-1; default: a timestamp")
        self.push_repo = gr.Textbox(label="Also push to Hub dataset repo (optional)",
                                    placeholder="user/my-prefs; needs HF_TOKEN in the app's environment")
        with gr.Row():
            self.disagreement = gr.Dropdown(
                list(DISAGREEMENT), value="majority", label="Annotators disagree on a pair",
                info="majority: keep the majority answer (a split is dropped); drop: keep only agreed pairs; "
                     "all: every vote is a row")
            self.both_bad = gr.Dropdown(list(BOTH_BAD), value="drop", label="Both bad",
                                        info="drop; written: keep it when the annotator wrote a better response")
            self.written = gr.Dropdown(list(WRITTEN), value="use", label="Human-written responses",
                                       info="use: it becomes chosen (marked human_written)")
        with gr.Row():
            self.sources = gr.Dropdown(list(SOURCES), value="votes", label="Rows from",
                                       info="votes: the app's human votes; imported: imported pairs; both")
            self.imported_share = gr.Number(0, label="Cap on the imported share (0: none)", minimum=0, maximum=1,
                                            info="with both: imported pairs make at most this share of the rows")
        self.eval_votes = gr.Checkbox(False, label=EVAL_VOTES_LABEL)
        self.export_button = gr.Button("Export", variant="primary")
        self.export_result = gr.Textbox(label="Export result", interactive=False, lines=3)

    def _render_prompts(self) -> None:
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
        with gr.Row():
            self.import_button = gr.Button("Import")
            self.import_eval_button = gr.Button("Import as eval prompts (held out: never labelled)")
        self.import_result = gr.Textbox(label="Import result", interactive=False, lines=2)

    @property
    def admin_only(self) -> list:
        return [self.tab]

    def events(self) -> None:
        view = [self.counts, self.preview, self.pairs_import.counts]
        on([self.tab.select, self.refresh.click], self.on_refresh, None, view, role=ADMIN, **PRIVATE)
        exported = on(self.export_button.click, self.on_export, [self.export_name, self.push_repo, self.disagreement,
                      self.both_bad, self.written, self.sources, self.imported_share, self.eval_votes],
                      [self.export_result], role=ADMIN, **PRIVATE)
        pairs_imported = self.pairs_import.events()
        added = on(self.add_prompts_button.click, self.on_add_prompts, [self.new_prompts],
                   [self.add_prompts_result, self.new_prompts], role=ADMIN, **PRIVATE)
        import_in = [self.import_file, self.import_source, self.import_split]
        on([self.import_file.change, self.import_source.submit], self.on_import_columns, import_in,
           [self.import_column], role=ADMIN, **PRIVATE)
        imported = on(self.import_button.click, self.on_import, [*import_in, self.import_column], [self.import_result],
                      role=ADMIN, **PRIVATE)
        # The same file, column and split, into the eval set: judged in the Evaluate tab, never served for labelling.
        eval_imported = on(self.import_eval_button.click, self.on_import_eval, [*import_in, self.import_column],
                           [self.import_result], role=ADMIN, **PRIVATE)
        for done in (exported, added, imported, pairs_imported, eval_imported):  # counts and preview follow each change
            on(done.success, self.on_refresh, None, view, role=ADMIN, **PRIVATE)

    def on_refresh(self) -> Update:
        summary = self.service.data_summary()
        counts = data_counts_markdown(summary.prompts, summary.counts, summary.pairs, summary.ties, summary.both_bad,
                                      summary.imported, self.service.eval_prompt_count())
        preview = pd.DataFrame(summary.preview, columns=["prompt", "chosen", "rejected"])
        return {self.counts: counts, self.preview: preview, self.pairs_import.counts: counts_frame(summary.imported)}

    def on_export(self, name: str, repo_id: str, disagreement: str = "majority", both_bad: str = "drop",
                  written: str = "use", sources: str = "votes", imported_share: float | None = None,
                  eval_votes: bool = False) -> str:
        return export_message(self.service, name, repo_id, disagreement, both_bad, written, sources, imported_share,
                              eval_votes)

    def on_add_prompts(self, text: str) -> Update:
        with user_errors():
            message = self.service.add_typed_prompts(text)
        return {self.add_prompts_result: capitalized(message), self.new_prompts: ""}

    def on_import_columns(self, file: str | None, source: str, split: str) -> gr.Dropdown:
        """Offer the source's columns to choose the prompt column from."""
        if not file and not (source or "").strip():
            return gr.Dropdown(choices=[], value=None)
        with user_errors():
            columns = self.service.prompt_columns(file or source, split or "train", uploaded=bool(file))
        return gr.Dropdown(choices=columns, value=None)

    def on_import(self, file: str | None, source: str, split: str, column: str | None, held_out: bool = False) -> str:
        """Prompts from the chosen source: for labelling, or (`held_out`) into the eval set."""
        if not file and not (source or "").strip():
            raise gr.Error("Choose a prompt file, or type a Hub dataset name or a path under the data folder.")
        intent = self.service.import_eval_prompts if held_out else self.service.import_prompt_source
        with user_errors():
            message = intent(file or source, column or None, split or "train", uploaded=bool(file))
        return capitalized(message)

    def on_import_eval(self, file: str | None, source: str, split: str, column: str | None) -> str:
        return self.on_import(file, source, split, column, held_out=True)
