"""The Quality tab: per-annotator figures, agreement between annotators and repeat-probe consistency (admin);
how pairs are chosen (coverage or active selection, prefapp.labeling.active), the mix served so far, and how often
the model wrote the same response twice (prefapp.labeling.distinct)."""

import gradio as gr
import pandas as pd

from prefapp.labeling.quality import QualityReport
from prefapp.service import PrefService
from prefapp.store.selection import IdenticalStats, SelectionMix
from prefapp.ui.access import ADMIN, on
from prefapp.ui.common import PRIVATE, Update, toast_text, user_errors

ANNOTATOR_COLUMNS = ["annotator", "votes", "share of A (50% = no side bias)", "median s/vote", "tie rate",
                     "both-bad rate", "probes", "consistency"]
PAIRWISE_COLUMNS = ["annotator 1", "annotator 2", "shared pairs", "agreement", "Cohen's kappa"]


def _pct(x: float | None) -> str:
    return "" if x is None else f"{100 * x:.0f}%"


def _num(x: float | None, fmt: str = "{:.2f}") -> str:
    return "" if x is None else fmt.format(x)


def annotators_frame(report: QualityReport) -> pd.DataFrame:
    rows = [[s.annotator, s.votes, _pct(s.share_a), _num(s.median_s, "{:.1f}"), _pct(s.tie_rate),
             _pct(s.both_bad_rate), s.probes, _pct(s.consistency)] for s in report.annotators]
    return pd.DataFrame(rows, columns=ANNOTATOR_COLUMNS)


def pairwise_frame(report: QualityReport) -> pd.DataFrame:
    rows = [[p.annotator_1, p.annotator_2, p.shared, _pct(p.agreement), _num(p.cohen_kappa)]
            for p in report.pairwise]
    return pd.DataFrame(rows, columns=PAIRWISE_COLUMNS)


def quality_markdown(report: QualityReport, overlap: int, probe_rate: float) -> str:
    if report.votes == 0:
        return "No votes yet."
    agreement = (f"**{_pct(report.percent_agreement)}** agreement, Fleiss' kappa **{_num(report.fleiss_kappa)}** on "
                 f"{report.overlapped_pairs} pairs labelled by 2+ annotators"
                 if report.overlapped_pairs else
                 f"no pair has 2+ annotators yet (overlap is {overlap}: raise it to measure agreement)")
    consistency = (f"**{_pct(report.consistency)}** consistent on {report.probes} repeat probes"
                   if report.probes else f"no repeat probe answered yet (probe rate {probe_rate:.0%})")
    return f"{report.votes} votes · {agreement} · {consistency}."


def mix_markdown(mix: SelectionMix, identical: IdenticalStats, mode: str, share: float) -> str:
    """The selection setting, the pairs served by each way of choosing, and the identical-pair record."""
    setting = ("**coverage** (least-labelled prompts first)" if mode == "coverage" else
               f"**active**: {1 - share:.0%} smallest margin under the latest round, {share:.0%} coverage")
    parts = [f"{mix.by_selection[s]} {s} ({mix.labelled[s]} labelled"
             + (f", mean margin {mix.mean_abs_margin[s]:.3f}" if mix.mean_abs_margin[s] is not None else "") + ")"
             for s in mix.by_selection]
    same = (f"{identical.resampled} of {identical.served} served pairs replaced a same-response draw "
            f"({identical.identical_draws} draws), {identical.hotter} needed a hotter second sample, "
            f"{identical.dropped} prompt(s) given up")
    return f"Pair selection: {setting}. Served: {', '.join(parts)}. Identical responses: {same}."


class QualityTab:
    """Labelling quality, refreshed when the tab opens."""

    def __init__(self, service: PrefService) -> None:
        self.service = service

    def render(self) -> None:
        with gr.Tab("Quality") as self.tab:
            self.summary = gr.Markdown()
            self.annotators = gr.Dataframe(pd.DataFrame(columns=ANNOTATOR_COLUMNS), label="Per annotator",
                                           interactive=False)
            self.pairwise = gr.Dataframe(pd.DataFrame(columns=PAIRWISE_COLUMNS),
                                         label="Agreement between two annotators on the pairs both labelled",
                                         interactive=False)
            self.refresh = gr.Button("Refresh")
            labeling = self.service.labeling.selection
            with gr.Accordion("Which pairs are served", open=True):
                with gr.Row():
                    self.selection = gr.Radio(["coverage", "active"], value=labeling.mode, label="Selection: "
                                              "least-labelled prompts, or pairs the latest round is least sure of")
                    self.coverage_share = gr.Slider(0, 1, value=labeling.coverage_share, step=0.05,
                                                    label="active: share still chosen by coverage")
                    self.apply_selection = gr.Button("Apply")
                self.mix = gr.Markdown()

    @property
    def admin_only(self) -> list:
        return [self.tab]

    def events(self) -> None:
        on([self.tab.select, self.refresh.click], self.on_refresh, None,
           [self.summary, self.annotators, self.pairwise, self.mix], role=ADMIN, **PRIVATE)
        on(self.apply_selection.click, self.on_selection, [self.selection, self.coverage_share], [self.mix],
           role=ADMIN, **PRIVATE)

    def on_refresh(self) -> Update:
        report = self.service.quality()
        labeling = self.service.config.labeling
        return {self.summary: quality_markdown(report, labeling.overlap, labeling.probe_rate),
                self.annotators: annotators_frame(report), self.pairwise: pairwise_frame(report),
                self.mix: self._mix()}

    def on_selection(self, mode: str, share: float) -> str:
        with user_errors():
            gr.Info(toast_text(self.service.set_selection(mode, float(share))))
        return self._mix()

    def _mix(self) -> str:
        selection, store = self.service.labeling.selection, self.service.store
        return mix_markdown(store.selection_mix(), store.identical_stats(), selection.mode, selection.coverage_share)
