"""The whole closed loop on the demo task, no human: label -> DuckDB -> export -> DPO -> compare -> next round."""

from prefapp.config import AppConfig
from prefapp.demo.loop import LOOP_TRAIN_CONFIG, run_demo_loop, wilson_interval
from prefapp.service import PrefService


def test_wilson_interval_brackets_the_rate():
    low, high = wilson_interval(60, 100)
    assert low < 0.6 < high and 0.49 < low < 0.51


def test_closed_loop_aligned_beats_base(tmp_path, demo_choice):
    report = run_demo_loop(tmp_path, n_pairs=200, n_eval=200, rounds=1, train_config=LOOP_TRAIN_CONFIG, seed=0)
    [first] = report.rounds
    print(report.summary())
    assert sum(first.labels.values()) == 200
    assert first.win_rate.wins > first.win_rate.losses, report.summary()

    # The round survives a restart: it is listed, its adapter reloads, and it can become the generator.
    service = PrefService.open(AppConfig(model="demo", data_dir=tmp_path), choice=demo_choice)
    try:
        [rnd] = service.rounds()
        assert rnd.status == "finished" and rnd.n_pairs == first.labels["A"] + first.labels["B"]
        assert "rewards/accuracies" in rnd.metrics
        assert service.model_info().aligned == "round-1"
        service.set_generator("round-1")
        pair = service.next_pair("ann")
        assert service.store.get_pair(pair.pair_id).adapter_id == "round-1"
    finally:
        service.close()
