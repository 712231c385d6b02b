"""The Evaluate tab: blind comparisons of two policies on held-out prompts, the verdict, and the leaderboard.

Annotators may use it: the same keys as labelling (1 A, 2 B, 3 tie, 4 both bad), sides random, and which policy
wrote which side is revealed only after the vote. By default it compares the newest finished round with the
current generator; an admin can pick any two (for everyone). Model and annotator text is shown only in read-only
textboxes, and a conversation's earlier turns in a read-only chat view of text rendered by prefapp.ui.render; the
plot and the Markdown hold our own figures and policy names (escaped).
"""

from __future__ import annotations

import html
from typing import Any

import gradio as gr
import pandas as pd

from prefapp.evaluation.judge import EvalReport
from prefapp.evaluation.stats import Strength
from prefapp.ui.access import ADMIN, ANNOTATOR, on
from prefapp.ui.common import PRIVATE, Update, earlier_turns, last_turn, turns_view, user_errors

EVAL_CONCURRENCY = dict(concurrency_id="evaluate", concurrency_limit=16)  # judges never wait on one another

EVAL_BUTTONS = {"A": "A is better", "B": "B is better", "tie": "Tie", "both_bad": "Both bad"}
EVAL_KEYS = {"A": "1", "B": "2", "tie": "3", "both_bad": "4"}
EVAL_BUTTON_IDS = {choice: f"eval-{choice.replace('_', '-').lower()}" for choice in EVAL_BUTTONS}
LEADERBOARD_COLUMNS = ["policy", "strength (log-odds vs base)", "95% CI low", "95% CI high", "comparisons"]
DEFAULT_COMPARISON = "default: the newest round vs the current generator"

# Like the Label tab's listener: a key clicks the visible Evaluate button unless the user is typing. Buttons of a
# hidden tab have no offsetParent, so the Label and Evaluate listeners never both act on one key press.
EVAL_KEYBOARD_JS = """
if (!window.__prefappEvalKeys) {
  window.__prefappEvalKeys = true;
  const ids = %s;
  document.addEventListener('keydown', (e) => {
    if (e.ctrlKey || e.metaKey || e.altKey || e.repeat) return;
    const t = e.target;
    if (t && (['INPUT', 'TEXTAREA', 'SELECT'].includes(t.tagName) || t.isContentEditable)) return;
    const button = ids[e.key.toLowerCase()] && document.getElementById(ids[e.key.toLowerCase()]);
    if (button && !button.disabled && button.offsetParent !== null) { e.preventDefault(); button.click(); }
  });
}
""" % ({key: EVAL_BUTTON_IDS[choice] for choice, key in EVAL_KEYS.items()},)


def verdict_markdown(report: EvalReport) -> str:
    w = report.win
    low, high = w.interval
    return (f"**{html.escape(report.b)} vs {html.escape(report.a)}**: {w.wins} wins, {w.losses} losses, {w.ties} "
            f"ties · win rate **{w.rate:.1%}** of decided comparisons (95% CI {low:.1%}-{high:.1%}) · "
            f"length-controlled **{report.lc_win_rate:.1%}**  \nVerdict: **{html.escape(report.verdict.words)}**")


def leaderboard_frame(rows: list[Strength]) -> pd.DataFrame:
    return pd.DataFrame([[r.policy, round(r.strength, 3), round(r.ci_low, 3), round(r.ci_high, 3), r.comparisons]
                         for r in rows], columns=LEADERBOARD_COLUMNS)


def leaderboard_svg(rows: list[Strength], width: int = 560, row_h: int = 26) -> str:
    """The leaderboard as a plot: each policy's strength as a dot with its 95% interval as a bar."""
    if not rows:
        return "<small>No eval votes yet: the leaderboard appears after the first comparisons.</small>"
    lo = min(min(r.ci_low for r in rows), 0.0) - 0.1
    hi = max(max(r.ci_high for r in rows), 0.0) + 0.1
    left, plot_w = 110, width - 130
    x = lambda v: left + (v - lo) / (hi - lo) * plot_w  # noqa: E731
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{row_h * len(rows) + 30}" '
             'id="eval-leaderboard-plot" role="img" aria-label="Bradley-Terry strengths with 95% intervals">',
             f'<line x1="{x(0):.1f}" y1="0" x2="{x(0):.1f}" y2="{row_h * len(rows)}" stroke="#999" '
             'stroke-dasharray="3,3"/>']
    for i, r in enumerate(rows):
        y = row_h * i + row_h / 2
        label = html.escape(r.policy)
        parts += [f'<text x="{left - 8}" y="{y + 4:.1f}" text-anchor="end" font-size="12">{label}</text>',
                  f'<line x1="{x(r.ci_low):.1f}" y1="{y:.1f}" x2="{x(r.ci_high):.1f}" y2="{y:.1f}" stroke="#4f46e5" '
                  'stroke-width="3"/>',
                  f'<circle cx="{x(r.strength):.1f}" cy="{y:.1f}" r="5" fill="#4f46e5"/>']
    parts.append(f'<text x="{x(0):.1f}" y="{row_h * len(rows) + 18}" text-anchor="middle" font-size="11">'
                 'strength vs base (0); bars: 95% bootstrap intervals</text></svg>')
    return "".join(parts)


class EvaluateTab:
    """Layout (`render`) and wiring (`events`) of the Evaluate tab around the app's one PrefService."""

    def __init__(self, service: Any) -> None:
        self.service = service

    # --- layout ----------------------------------------------------------------------------------------------

    def render(self) -> None:
        with gr.Tab("Evaluate") as self.tab:
            self._render()

    def _render(self) -> None:
        gr.Markdown("Blind comparison on held-out prompts: which answer would you rather get? The sides are random "
                    "and you learn which policy wrote which only after your vote.")
        with gr.Row():
            self.annotator = gr.Textbox(label="Your name", placeholder="type your name, then Enter", max_length=100,
                                        scale=3, elem_id="eval-annotator")
            self.comparison = gr.Textbox(label="Comparing", value=DEFAULT_COMPARISON, interactive=False, scale=3)
        self.turns = turns_view("eval-turns")  # a conversation's earlier turns; hidden for one turn
        self.prompt = gr.Textbox(label="Prompt", interactive=False, lines=2, max_lines=12, elem_id="eval-prompt")
        with gr.Row(equal_height=True):
            self.response_a = gr.Textbox(label="Response A", interactive=False, lines=5, max_lines=20,
                                         elem_id="eval-response-a")
            self.response_b = gr.Textbox(label="Response B", interactive=False, lines=5, max_lines=20,
                                         elem_id="eval-response-b")
        with gr.Row():
            self.buttons = {choice: gr.Button(f"{label} [{EVAL_KEYS[choice]}]", elem_id=EVAL_BUTTON_IDS[choice],
                                              variant="primary" if choice in ("A", "B") else "secondary")
                            for choice, label in EVAL_BUTTONS.items()}
        gr.HTML("<small>Keyboard: 1 A · 2 B · 3 tie · 4 both bad (not while typing in a box)</small>",
                js_on_load=EVAL_KEYBOARD_JS)
        with gr.Row():
            self.revealed = gr.Textbox(label="Your last vote (identities revealed)", interactive=False, scale=4,
                                       elem_id="eval-revealed")
            self.pair_id = gr.Textbox(label="Eval pair id", interactive=False, scale=1, elem_id="eval-pair-id")
        self.verdict = gr.Markdown(elem_id="eval-verdict")
        with gr.Accordion("Leaderboard: Bradley-Terry strengths of base and every round, from all eval votes",
                          open=True):
            self.plot = gr.HTML(elem_id="eval-plot")
            self.table = gr.Dataframe(pd.DataFrame(columns=LEADERBOARD_COLUMNS), interactive=False,
                                      elem_id="eval-leaderboard")
            self.refresh = gr.Button("Refresh")
        with gr.Accordion("Admin: which two policies to compare (for everyone)", open=False) as self.admin_box:
            with gr.Row():
                self.pick_a = gr.Dropdown(["base"], value="base", label="Reference (a)", allow_custom_value=True)
                self.pick_b = gr.Dropdown([], label="Candidate (b); empty: the default comparison",
                                          allow_custom_value=True)
                self.pick_button = gr.Button("Compare these")

    # --- wiring ----------------------------------------------------------------------------------------------

    @property
    def admin_only(self) -> list:
        return [self.admin_box]

    def events(self) -> None:
        view = [self.pair_id, self.turns, self.prompt, self.response_a, self.response_b, self.revealed, self.verdict,
                self.comparison]
        board = [self.verdict, self.plot, self.table, self.pick_a, self.pick_b, self.comparison]
        judge = dict(role=ANNOTATOR, show_progress="hidden", **EVAL_CONCURRENCY, **PRIVATE)
        on(self.annotator.submit, self.on_start, [self.annotator], view, **judge)
        for choice, button in self.buttons.items():
            on(button.click, self._vote_handler(choice), [self.pair_id, self.annotator], view, **judge)
        on([self.tab.select, self.refresh.click], self.on_board, None, board, role=ANNOTATOR, **PRIVATE)
        on(self.pick_button.click, self.on_pick, [self.pick_a, self.pick_b], board, role=ADMIN, **PRIVATE)

    def _vote_handler(self, choice: str):
        def on_eval_vote(pair_id: str, annotator: str) -> Update:
            return self.vote(choice, pair_id, annotator)
        on_eval_vote.__qualname__ = f"EvaluateTab.on_vote_{choice}"
        return on_eval_vote

    # --- handlers --------------------------------------------------------------------------------------------

    def on_start(self, annotator: str) -> Update:
        if not (annotator or "").strip():
            return {self.revealed: "Enter your name to get the first comparison."}
        with user_errors():
            return self._pair(annotator)

    def vote(self, choice: str, pair_id: str, annotator: str) -> Update:
        if not pair_id:
            raise gr.Error("No comparison is on screen yet: enter your name first.")
        with user_errors():
            outcome = self.service.eval_vote(pair_id, choice, annotator)  # its verdict: no bootstrap, fast
            update = self._pair(annotator, with_verdict=outcome.report is None)
        if outcome.report is not None:
            update[self.verdict] = verdict_markdown(outcome.report)
        return {**update, self.revealed: outcome.message}

    def _pair(self, annotator: str, with_verdict: bool = True) -> dict:
        pair = self.service.eval_next(annotator)
        update = {self.pair_id: pair.pair_id, self.turns: earlier_turns(pair.messages),
                  self.prompt: last_turn(pair.messages, pair.prompt), self.response_a: pair.response_a,
                  self.response_b: pair.response_b,
                  self.comparison: f"{pair.comparison} (who is A and who is B is hidden until you vote)"}
        if with_verdict:
            a, b = self.service.eval_comparison()
            update[self.verdict] = verdict_markdown(self.service.evaluation.report(a, b, bootstrap=0))
        return update

    def on_board(self) -> Update:
        policies = self.service.evaluation.policies()
        picks = {self.pick_a: gr.Dropdown(policies), self.pick_b: gr.Dropdown(policies)}
        try:
            a, b = self.service.eval_comparison()
        except ValueError as exc:  # no round yet: say so, and show what there is
            rows = self.service.leaderboard()
            return {self.verdict: html.escape(str(exc)), self.plot: leaderboard_svg(rows),
                    self.table: leaderboard_frame(rows), **picks, self.comparison: DEFAULT_COMPARISON}
        report = self.service.eval_report(a, b)
        return {self.verdict: verdict_markdown(report), self.plot: leaderboard_svg(report.leaderboard),
                self.table: leaderboard_frame(report.leaderboard), **picks, self.comparison: f"{b} vs {a}"}

    def on_pick(self, a: str | None, b: str | None) -> Update:
        with user_errors():
            self.service.set_eval_comparison(a or "", b or "")
        return self.on_board()
