"""The Label tab's ergonomics and the Quality tab: keyboard shortcuts, undo, reasons, written responses, guidelines,
progress, and the data-quality figures. Layout and text helpers only; `PrefUI` (prefapp.ui.app) wires the events.

The guidelines are Markdown written by whoever runs the app (trusted); everything annotators or models wrote is
still shown only in read-only textboxes and tables.
"""

import html

import gradio as gr
import pandas as pd

from prefapp.labeling.next_pair import Progress
from prefapp.labeling.quality import QualityReport

SHORTCUTS = {"A": "1", "B": "2", "tie": "3", "both_bad": "4", "skip": "s", "undo": "u"}  # key per action
BUTTON_IDS = {action: f"label-{action.replace('_', '-')}" for action in SHORTCUTS}
SOURCE_WORDS = {"queue": "ready in the queue", "generated": "generated just now (the queue was empty)",
                "overlap": "also labelled by someone else (overlap, to measure agreement)",
                "probe": "a repeat of a pair you labelled, sides swapped (consistency check)",
                "undo": "your last vote was taken back: vote again"}

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


def source_text(source: str) -> str:
    return SOURCE_WORDS.get(source, source)


# --- the Quality tab ---------------------------------------------------------------------------------------------


def _pct(x: float | None) -> str:
    return "" if x is None else f"{100 * x:.0f}%"


def _num(x: float | None, fmt: str = "{:.2f}") -> str:
    return "" if x is None else fmt.format(x)


ANNOTATOR_COLUMNS = ["annotator", "votes", "share of A (50% = no side bias)", "median s/vote", "tie rate",
                     "both-bad rate", "probes", "consistency"]
PAIRWISE_COLUMNS = ["annotator 1", "annotator 2", "shared pairs", "agreement", "Cohen's kappa"]


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


def render_quality_tab(ui) -> None:
    ui.quality_summary = gr.Markdown()
    ui.quality_annotators = gr.Dataframe(pd.DataFrame(columns=ANNOTATOR_COLUMNS), label="Per annotator",
                                         interactive=False)
    ui.quality_pairwise = gr.Dataframe(pd.DataFrame(columns=PAIRWISE_COLUMNS),
                                       label="Agreement between two annotators on the pairs both labelled",
                                       interactive=False)
    ui.quality_refresh = gr.Button("Refresh")
