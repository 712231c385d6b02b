"""Eval votes in training exports: never unless an admin opts in; then exactly the decided eval votes, through the
one pipeline (prefapp.preferences.resolve.preference_dataset), with their provenance. Real DuckDB, no model."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from datasets import load_from_disk

from prefapp.preferences.resolve import ExportOptions, export_preferences, preference_dataset
from prefapp.store import Store

SAMPLING = {"temperature": 1.0, "top_p": 0.95, "max_new_tokens": 8}


@pytest.fixture
def store(tmp_path):
    with Store(tmp_path / "e.duckdb") as s:
        fill(s)
        yield s


def fill(s: Store) -> None:
    """Two labelling votes and eval votes of every kind: a win each side, a 2:1 majority, a tie, both bad, a
    simulated judge."""
    s.add_prompts(["Q1", "Q2"], source="test")
    for i in (1, 2):  # two labelling votes: A on Q1, B on Q2
        pair = s.add_pair(s.get_prompt(i), f"a{i}", f"b{i}", swapped=False, model_id="m", adapter_id=None,
                          sampling=SAMPLING, served_to="ann")
        s.record_vote(pair.id, "A" if i == 1 else "B", "ann")
    s.add_eval_prompts(["E1", "E2", "E3", "E4", "E5"], source="test")
    prompts = {p.text: p for p in s.eval_prompts()}

    def judged(text: str, shown: tuple[str, str], votes: dict[str, str], judge: str = "human") -> None:
        pair = s.add_eval_pair(prompts[text], shown[0], shown[1], f"{shown[0]} on {text}", f"{shown[1]} on {text}",
                               shown[0] != "base", "m", SAMPLING, "carol")
        for annotator, choice in votes.items():
            s.record_eval_vote(pair.id, choice, annotator, judge)

    judged("E1", ("round-1", "base"), {"carol": "A"})  # round-1 wins on side A
    judged("E2", ("base", "round-1"), {"carol": "B", "dan": "B", "eve": "A"}, )  # round-1 wins 2:1 on side B
    judged("E3", ("base", "round-1"), {"carol": "tie"})
    judged("E4", ("round-1", "base"), {"carol": "both_bad"})
    judged("E5", ("base", "round-1"), {"simulated": "A"}, judge="simulated")  # base wins, a simulated judge


def test_eval_votes_never_reach_an_export_by_default(store, tmp_path):
    for options in (ExportOptions(), ExportOptions(sources="both"), ExportOptions(disagreement="all")):
        dataset, counts = preference_dataset(store, options)
        assert [r["chosen"][0]["content"] for r in dataset] == ["a1", "b2"]
        assert counts.eval_votes == 0 and counts.votes == 2 and "Eval" not in counts.summary()
    result = export_preferences(store, tmp_path / "exports", "plain")
    assert [r["prompt"][0]["content"] for r in load_from_disk(str(result.dataset_dir))] == ["Q1", "Q2"]


def test_opted_in_exactly_the_decided_eval_votes_with_provenance(store, tmp_path):
    dataset, counts = preference_dataset(store, ExportOptions(eval_votes=True))
    rows = [(r["prompt"][0]["content"], r["chosen"][0]["content"], r["rejected"][0]["content"], r["origin"],
             r["eval_chosen_policy"], r["eval_rejected_policy"], r["eval_judge"]) for r in dataset]
    assert rows == [("Q1", "a1", "b1", "vote", "", "", ""), ("Q2", "b2", "a2", "vote", "", "", ""),
                    ("E1", "round-1 on E1", "base on E1", "eval", "round-1", "base", "human"),
                    ("E2", "round-1 on E2", "base on E2", "eval", "round-1", "base", "human"),
                    ("E5", "base on E5", "round-1 on E5", "eval", "base", "round-1", "simulated")]
    assert (counts.eval_votes, counts.eval_rows, counts.eval_ties, counts.eval_both_bad, counts.rows) == (
        7, 3, 1, 1, 5)
    assert [r["annotator"] for r in dataset][2:] == ["carol", "carol", "simulated"]  # E2: the first vote of the majority
    assert "Eval votes opted in: 3 rows from 7 eval votes (left out: 1 ties, 1 both bad" in counts.summary()
    exported = counts.as_export_counts()
    assert (exported.votes, exported.pairs, exported.ties, exported.both_bad) == (9, 5, 1, 1)

    # The votes' disagreement rule applies to eval pairs too: `drop` loses E2 (2:1), `all` keeps its three votes.
    dropped, counts = preference_dataset(store, ExportOptions(eval_votes=True, disagreement="drop"))
    assert [r["prompt"][0]["content"] for r in dropped if r["origin"] == "eval"] == ["E1", "E5"]
    assert counts.eval_dropped == 1
    every, _ = preference_dataset(store, ExportOptions(eval_votes=True, disagreement="all"))
    assert sorted(r["chosen"][0]["content"] for r in every if r["origin"] == "eval") == [
        "base on E2", "base on E5", "round-1 on E1", "round-1 on E2", "round-1 on E2"]

    # Imported pairs and eval votes together, and a saved export keeps every provenance column.
    only_eval, counts = preference_dataset(store, ExportOptions(sources="imported", eval_votes=True))
    assert [r["origin"] for r in only_eval] == ["eval"] * 3 and counts.rows == 3
    result = export_preferences(store, tmp_path / "exports", "with-eval", ExportOptions(eval_votes=True))
    saved = load_from_disk(str(result.dataset_dir))
    assert len(saved) == 5
    assert {"origin", "import_source", "eval_chosen_policy", "eval_judge"} <= set(saved.column_names)
    preview, _ = preference_dataset(store, ExportOptions(eval_votes=True), limit=3)
    assert [r["origin"] for r in preview] == ["vote", "vote", "eval"]


def test_opted_in_without_eval_votes_changes_no_row(tmp_path):
    with Store(tmp_path / "none.duckdb") as s:
        s.add_prompts(["Q1"], source="test")
        pair = s.add_pair(s.get_prompt(1), "a", "b", swapped=False, model_id="m", adapter_id=None, sampling=SAMPLING,
                          served_to="ann")
        s.record_vote(pair.id, "A", "ann")
        dataset, counts = preference_dataset(s, ExportOptions(eval_votes=True))
        assert [(r["chosen"][0]["content"], r["origin"]) for r in dataset] == [("a", "vote")]
        assert (counts.rows, counts.eval_votes, counts.eval_rows) == (1, 0, 0)


def test_the_command_line_opts_in_the_same_way(tmp_path):
    """`prefapp export --eval-votes` (a real process) writes exactly the rows the app's opted-in export has."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    with Store(data_dir / "prefapp.duckdb") as s:
        fill(s)
        expected, _ = preference_dataset(s, ExportOptions(eval_votes=True))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    for flags, name in (([], "plain"), (["--eval-votes"], "with-evals")):
        done = subprocess.run([sys.executable, "-m", "prefapp.cli", "export", "--data-dir", str(data_dir), "--name",
                               name, *flags], capture_output=True, text=True, env=env, timeout=300)
        assert done.returncode == 0, done.stderr
    plain = load_from_disk(str(data_dir / "exports" / "plain"))
    assert [r["prompt"][0]["content"] for r in plain] == ["Q1", "Q2"]
    exported = load_from_disk(str(data_dir / "exports" / "with-evals"))
    assert [(r["prompt"], r["chosen"], r["rejected"], r["origin"]) for r in exported] == [
        (r["prompt"], r["chosen"], r["rejected"], r["origin"]) for r in expected]
    assert [r["origin"] for r in exported] == ["vote", "vote", "eval", "eval", "eval"]
