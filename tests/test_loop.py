"""The whole closed loop on the demo task, no human: label -> DuckDB -> export -> DPO -> checks -> blind eval votes
-> verdict -> gate -> next round; then `prefapp eval` on the same store."""

import json
import os
import subprocess
import sys

from prefapp.config import AppConfig, REPO_ROOT
from prefapp.demo.loop import LOOP_TRAIN_CONFIG, run_demo_loop
from prefapp.service import PrefService


def test_closed_loop_round_1_is_judged_working(tmp_path, demo_choice):
    report = run_demo_loop(tmp_path, n_pairs=200, n_eval=200, rounds=1, train_config=LOOP_TRAIN_CONFIG, seed=0)
    [first] = report.rounds
    print(report.summary())
    assert sum(first.labels.values()) == 200
    assert first.report.verdict.key == "working", report.summary()  # through the same path as the Evaluate tab
    assert first.report.win.n == 200 and first.checks is not None and not first.checks.flags, report.summary()
    assert "round-1 vs base: working" in first.gate and "Refused" not in first.gate

    # The round survives a restart: it is listed, its adapter reloads, its checks and eval votes are stored.
    service = PrefService.open(AppConfig(model="demo", data_dir=tmp_path), choice=demo_choice)
    try:
        [rnd] = service.rounds()
        assert rnd.status == "finished" and rnd.n_pairs == first.labels["A"] + first.labels["B"]
        assert "rewards/accuracies" in rnd.metrics
        assert service.model_info().aligned == "round-1"
        assert service.round_checks(1) == first.checks
        assert len(service.store.eval_votes("simulated")) == 200 and service.store.votes()  # apart from labels
        assert [p["round_id"] for p in service.store.promotions()] == [1]
        service.set_generator("round-1")
        pair = service.next_pair("ann")
        assert service.store.get_pair(pair.pair_id).adapter_id == "round-1"
    finally:
        service.close()

    # `prefapp eval` prints one JSON object; human votes: none yet, so not decided.
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "prefapp.cli", "eval", "--data-dir", str(tmp_path), "--a", "base", "--b",
           "round-1", "--json"]
    human = json.loads(subprocess.run(cmd + ["--judge", "human"], env=env, capture_output=True, text=True,
                                      check=True).stdout)
    assert (human["wins"], human["losses"], human["ties"], human["verdict"]) == (0, 0, 0, "undecided")
    out = subprocess.run(cmd + ["--judge", "simulated", "--prompts", "40"], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    simulated = json.loads(out.stdout)
    assert simulated["wins"] + simulated["losses"] + simulated["ties"] == 240  # every simulated vote so far
    assert simulated["verdict"] == "working" and simulated["ci_low"] > 0.5
    assert [row["policy"] for row in simulated["leaderboard"]] == ["round-1", "base"]
