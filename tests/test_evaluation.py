"""Evaluation without a model: held-out prompts, eval pairs and votes in DuckDB, the checks' figures and flags,
the gate's decision. (With the demo model: tests/test_eval_loop.py.)"""

import json

import pytest

from prefapp.evaluation.checks import RoundChecks, TextStats, distinct_n, flags, repeated_ngram_share
from prefapp.evaluation.gate import decide
from prefapp.evaluation.heldout import add_labelling_prompts, is_held_out
from prefapp.evaluation.judge import report_from_votes
from prefapp.store import Store
from prefapp.store.records import to_messages

SAMPLING = {"temperature": 1.0, "top_p": 0.95, "max_new_tokens": 64}


@pytest.fixture
def store(tmp_path):
    with Store(tmp_path / "prefapp.duckdb") as s:
        yield s


def test_eval_prompts_and_labelling_prompts_never_overlap(store):
    store.add_prompts(["labelled already"], source="typed")
    result = store.add_eval_prompts(["held 1", "held 2", "held 1", "labelled already", "  "], source="file:e.jsonl")
    assert (result.added, result.duplicates, result.in_labelling, result.invalid) == (2, 1, 1, 1)
    assert store.eval_prompt_count() == 2 and store.prompt_count() == 1
    added = add_labelling_prompts(store, ["held 2", "new one"], "typed", share=0.0)
    assert added.result.added == 1 and added.skipped_eval == 1  # an eval prompt is never made a labelling prompt
    assert {p.text for p in store.least_served_prompts(10)} == {"labelled already", "new one"}


def test_holdout_share_is_a_stable_hash(store):
    prompts = [f"question {i}" for i in range(2000)]
    held = [p for p in prompts if is_held_out(to_messages(p), 0.1)]
    assert 150 < len(held) < 250  # about 10%
    assert held == [p for p in prompts if is_held_out(to_messages(p), 0.1)]  # the same ones every time
    added = add_labelling_prompts(store, prompts, "import:q.csv", share=0.1)
    assert added.held_out.added == len(held) and store.eval_prompt_count() == len(held)
    assert store.prompt_count() == 2000 - len(held)
    again = add_labelling_prompts(store, prompts, "import:q.csv", share=0.1)  # a re-import leaks nothing
    assert again.result.added == 0 and store.prompt_count() == 2000 - len(held)
    assert "held out for evaluation" in added.note()


def _vote(store, a_text: str, b_text: str, shown: tuple[str, str], choice: str, annotator: str = "ann",
          judge: str = "human"):
    prompt = store.eval_prompts()[0]
    pair = store.add_eval_pair(prompt, shown[0], shown[1], a_text, b_text, shown[0] != "base", "demo", SAMPLING,
                               annotator)
    return store.record_eval_vote(pair.id, choice, annotator, judge)


def test_eval_votes_keep_full_provenance_and_stay_out_of_training_votes(store):
    store.add_eval_prompts(["What is 2 + 2?"], source="test")
    vote, created = _vote(store, "4.", "Four, you fool.", ("round-1", "base"), "A")
    assert created and vote.winner == "round-1" and vote.judge == "human" and vote.swapped
    assert (vote.policy_a, vote.policy_b, vote.response_a, vote.response_b) == ("round-1", "base", "4.",
                                                                                 "Four, you fool.")
    assert vote.prompt == [{"role": "user", "content": "What is 2 + 2?"}] and vote.sampling == SAMPLING
    again, created = store.record_eval_vote(vote.pair_id, "B", "ann")
    assert not created and again.choice == "A"  # a double click changes nothing
    assert store.votes() == []  # training exports read votes: an eval vote can never reach them
    with pytest.raises(ValueError, match="unknown eval pair"):
        store.record_eval_vote("nope", "A", "ann")
    with pytest.raises(ValueError, match="judge"):
        store.record_eval_vote(vote.pair_id, "A", "bob", judge="robot")


def test_report_orients_wins_by_policy_not_by_side(store):
    store.add_eval_prompts(["q"], source="test")
    for i in range(12):  # round-1 wins 9 of 12 whichever side it is shown on
        shown = ("round-1", "base") if i % 2 else ("base", "round-1")
        winner_side = "A" if shown[0] == "round-1" else "B"
        loser_side = "B" if winner_side == "A" else "A"
        _vote(store, "x", "y", shown, winner_side if i < 9 else loser_side, annotator=f"ann{i}")
    _vote(store, "x", "y", ("base", "round-1"), "tie", annotator="ann-tie")
    report = report_from_votes(store.eval_votes(), "base", "round-1", bootstrap=50)
    assert (report.win.wins, report.win.losses, report.win.ties) == (9, 3, 1)
    data = report.to_dict()
    assert set(data) >= {"a", "b", "wins", "losses", "ties", "win_rate", "ci_low", "ci_high", "lc_win_rate",
                         "verdict", "leaderboard"}
    assert data["leaderboard"][0]["policy"] == "round-1" and json.dumps(data)


def test_repetition_and_diversity_figures():
    assert repeated_ngram_share("a b c a b c") == pytest.approx(1 / 4)  # 4 trigrams, "a b c" repeats once
    assert repeated_ngram_share("short") == 0.0
    assert distinct_n(["a b", "a b"]) == 0.5 and distinct_n(["a b c"]) == 1.0


def _stats(rep=0.01, dist=0.6, tokens=12.0, hit=0.0):
    return TextStats(rep, dist, tokens, hit)


def test_flags_name_the_remedy_and_a_healthy_round_has_none():
    assert flags(_stats(), _stats(rep=0.02, tokens=9.0), drift=0.4) == []
    flagged = flags(_stats(), _stats(rep=0.45, dist=0.1, tokens=60.0, hit=0.9), drift=3.0)
    assert len(flagged) == 5 and "halve the learning rate" in flagged[0] and "beta" in flagged[0]


def test_gate_refuses_worse_or_degenerate_and_can_require_working(store):
    store.add_eval_prompts(["q"], source="test")
    for i in range(40):  # round-1 loses 32 of 40
        _vote(store, "x", "y", ("base", "round-1"), "A" if i < 32 else "B", annotator=f"a{i}")
    worse = report_from_votes(store.eval_votes(), "base", "round-1", bootstrap=0)
    healthy = RoundChecks("round-1", 10, _stats(), _stats(), 0.3, 3.0, [])
    decision = decide("round-1", "base", worse.verdict, healthy, require_working=False)
    assert not decision.allowed and "worse" in decision.text() and "Confirm" in decision.text()
    degenerate = RoundChecks("round-1", 10, _stats(), _stats(rep=0.5), 0.3, 3.0, ["Repetitive outputs"])
    undecided = report_from_votes([], "base", "round-1", bootstrap=0)
    assert not decide("round-1", "base", undecided.verdict, degenerate, False).allowed
    assert decide("round-1", "base", undecided.verdict, healthy, False).allowed
    assert not decide("round-1", "base", undecided.verdict, healthy, require_working=True).allowed


def test_prefapp_eval_human_prints_the_json_contract(tmp_path, capsys):
    from prefapp.cli import main

    with Store(tmp_path / "prefapp.duckdb") as store:
        store.add_eval_prompts(["q"], source="test")
        for i in range(30):  # round-2 wins 24 of 30 decided, plus 5 ties and a simulated vote that must not count
            _vote(store, "x", "y", ("round-2", "base"), "A" if i < 24 else "B", annotator=f"h{i}")
        for i in range(5):
            _vote(store, "x", "y", ("base", "round-2"), "tie", annotator=f"t{i}")
        _vote(store, "x", "y", ("base", "round-2"), "A", annotator="simulated", judge="simulated")
    assert main(["eval", "--data-dir", str(tmp_path), "--a", "base", "--b", "round-2", "--judge", "human",
                 "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["a"], out["b"], out["wins"], out["losses"], out["ties"]) == ("base", "round-2", 24, 6, 5)
    assert out["win_rate"] == 0.8 and out["ci_low"] > 0.5 and out["verdict"] == "working"
    assert 0 < out["lc_win_rate"] < 1
    assert [r["policy"] for r in out["leaderboard"]] == ["round-2", "base"]
    assert out["leaderboard"][0]["ci_low"] > 0 and set(out["leaderboard"][0]) >= {"policy", "strength", "ci_low",
                                                                                 "ci_high"}
    assert main(["eval", "--data-dir", str(tmp_path / "empty"), "--judge", "human"]) == 2  # no round: says so


def test_without_an_eval_queue_a_pair_is_generated_at_once(tmp_path, demo_choice):
    """queue_target=0: nothing is generated ahead, so the pair is generated for the caller instead of waiting for a
    queue batch that never comes (it used to wait EMPTY_QUEUE_WAIT_S, two minutes)."""
    import threading
    from dataclasses import replace

    from prefapp.config import AppConfig, EvalConfig
    from prefapp.service import PrefService
    from tests.test_adapters import save_adapter

    config = AppConfig(model="demo", data_dir=tmp_path / "data",
                       evaluation=replace(EvalConfig(), queue_target=0, queue_batch=1))
    service = PrefService.open(config, choice=demo_choice, seed=0)
    try:
        rnd = service.add_round(save_adapter(config.data_dir / "elsewhere"))  # a real (untrained) LoRA adapter
        service.store.add_eval_prompts(["What is 2 + 3?"], source="test")
        got = []
        worker = threading.Thread(target=lambda: got.append(service.eval_next("ann", "base", f"round-{rnd.id}")),
                                  daemon=True)
        worker.start()
        worker.join(60)  # a hang detector, not a speed check: the bug waited 120 s
        assert got, "eval_next waited for a queue that is switched off"
        assert got[0].source == "generated" and got[0].response_a and got[0].response_b
    finally:
        service.close()
