import pytest

from prefapp.config import ConfigError, TrainConfig
from prefapp.demo.task import simulated_annotator
from prefapp.store import Store


def test_open_seeds_the_demo_prompts_and_reports_the_model(service):
    info = service.model_info()
    assert info.label == "prefapp-demo" and "bundled demo model" in info.reason
    assert info.generator == "base" and info.aligned is None
    assert service.store.prompt_count() >= 500


def test_next_pair_then_vote_records_what_was_shown(service):
    pair = service.next_pair("ann")
    assert pair.prompt and pair.response_a and pair.response_b
    outcome = service.vote(pair.pair_id, "B", "ann")
    assert outcome.recorded and "You: 1 votes" in outcome.message
    [vote] = service.store.votes()
    assert (vote.pair_id, vote.choice, vote.annotator) == (pair.pair_id, "B", "ann")
    assert (vote.response_a, vote.response_b) == (pair.response_a, pair.response_b)
    assert vote.model_id == "prefapp-demo" and vote.adapter_id is None
    assert vote.sampling["max_new_tokens"] == 48
    again = service.vote(pair.pair_id, "A", "ann")
    assert not again.recorded and "nothing changed" in again.message
    assert [v.choice for v in service.store.votes()] == ["B"]


def test_sides_are_randomized(service):
    swaps = {service.store.get_pair(service.next_pair("ann").pair_id).swapped for _ in range(12)}
    assert swaps == {True, False}


def test_user_errors_name_the_fix(service):
    with pytest.raises(ConfigError, match="enter your name"):
        service.next_pair("  ")
    with pytest.raises(ValueError, match="fetch a new pair"):
        service.vote("no-such-pair", "A", "ann")
    pair = service.next_pair("ann")
    with pytest.raises(ValueError):
        service.vote(pair.pair_id, "C", "ann")
    with pytest.raises(ConfigError, match="out of range"):
        service.set_sampling(0, 0.9, 10)
    with pytest.raises(ConfigError, match="not a finished round"):
        service.set_generator("round-7")
    with pytest.raises(ConfigError, match="label some pairs"):
        service.start_training(TrainConfig())
    assert service.rounds() == []  # a refused start leaves no round behind


def test_typed_prompts_are_deduplicated(service):
    before = service.store.prompt_count()
    message = service.add_typed_prompts("Tell me a joke.\nTell me a joke.\n")
    assert "added 1" in message and "1 duplicate" in message
    assert service.store.prompt_count() == before + 1


def test_data_summary_and_export(service):
    for _ in range(6):
        pair = service.next_pair("sim")
        service.vote(pair.pair_id, simulated_annotator(pair.prompt, pair.response_a, pair.response_b), "sim")
    summary = service.data_summary()
    assert summary.counts.total == 6
    assert summary.pairs + summary.ties + summary.both_bad == 6
    assert len(summary.preview) == summary.pairs
    if summary.pairs:
        result = service.export("first")
        assert result.counts.pairs == summary.pairs and result.dataset_dir.exists()


def test_chat_without_a_round_answers_from_the_base_only(service):
    base, aligned = service.chat([], [], "What is 6 + 1?")
    assert base and aligned is None


def test_reopening_keeps_votes(app_config, demo_choice):
    from prefapp.service import PrefService

    svc = PrefService.open(app_config, choice=demo_choice, seed=1)
    pair = svc.next_pair("ann")
    svc.vote(pair.pair_id, "A", "ann")
    n_prompts = svc.store.prompt_count()
    svc.close()
    with Store(app_config.db_path) as store:
        assert [v.pair_id for v in store.votes()] == [pair.pair_id]
        assert store.prompt_count() == n_prompts  # the demo prompts are not seeded twice


def test_training_data_resolves_overlap_like_an_export(service):
    pair = service.next_pair("ann")
    service.vote(pair.pair_id, "A", "ann")
    service.store.record_vote(pair.pair_id, "A", "bob")  # a second annotator on the same pair (overlap)
    assert service.data_summary().pairs == 1
    service.store.record_vote(pair.pair_id, "B", "cid")  # 2 A vs 1 B: the majority still picks A
    summary = service.data_summary()
    assert summary.pairs == 1 and summary.preview[0]["chosen"] == pair.response_a
