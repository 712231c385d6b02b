"""The Quality tab: per-annotator figures, agreement between annotators and repeat-probe consistency (admin)."""

import gradio as gr
import pandas as pd

from prefapp.labeling.quality import QualityReport
from prefapp.service import PrefService
from prefapp.ui.access import ADMIN, on
from prefapp.ui.common import PRIVATE, Update

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

    @property
    def admin_only(self) -> list:
        return [self.tab]

    def events(self) -> None:
        on([self.tab.select, self.refresh.click], self.on_refresh, None,
           [self.summary, self.annotators, self.pairwise], role=ADMIN, **PRIVATE)

    def on_refresh(self) -> Update:
        report = self.service.quality()
        labeling = self.service.config.labeling
        return {self.summary: quality_markdown(report, labeling.overlap, labeling.probe_rate),
                self.annotators: annotators_frame(report), self.pairwise: pairwise_frame(report)}
