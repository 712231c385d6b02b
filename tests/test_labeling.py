"""Serving pairs through PrefService: the queue, undo, overlap between annotators, repeat probes, notes."""

from __future__ import annotations

from dataclasses import replace

import pytest

from prefapp.config import ConfigError, LabelingConfig
from prefapp.service import PrefService
from prefapp.store import Store


def open_service(app_config, policy, **labeling) -> PrefService:
    config = replace(app_config, labeling=LabelingConfig(queue_target=4, queue_batch=2, **labeling))
    service = PrefService(config, Store(config.db_path), policy, seed=0)
    service.add_typed_prompts("\n".join(f"What is {i} + 1?" for i in range(10)))
    return service


@pytest.fixture
def make_service(app_config, demo_policy):
    opened = []

    def make(**labeling) -> PrefService:
        opened.append(open_service(app_config, demo_policy, **labeling))
        return opened[-1]

    yield make
    for service in opened:
        service.close()


def test_pairs_come_from_the_warm_queue_and_are_recorded_when_served(make_service):
    service = make_service()
    first = service.next_pair("ann")  # starts the queue; the first pair may have to wait for its first batch
    assert service.labeling.queue.wait_ready(2, timeout=120)
    pair = service.next_pair("ann")
    assert pair.source == "queue" and pair.response_a and pair.response_b
    stored = service.store.get_pair(pair.pair_id)
    assert (stored.served_to, stored.response_a, stored.adapter_id) == ("ann", pair.response_a, None)
    assert service.store.pair_count() == 2 and first.pair_id != pair.pair_id
    message = service.set_sampling(0.5, 0.9, 8)  # a new sampling: the queued pairs are discarded
    assert message.temperature == 0.5 and service.labeling.queue.status().discarded >= 1


def test_undo_takes_back_the_last_vote_and_shows_that_pair_again(make_service):
    service = make_service()
    assert service.undo("ann") is None
    pair = service.next_pair("ann")
    service.vote(pair.pair_id, "A", "ann", reason="more correct")
    again = service.undo("ann")
    assert (again.pair_id, again.response_a, again.source) == (pair.pair_id, pair.response_a, "undo")
    assert service.store.votes() == [] and service.store.vote_notes() == {}
    assert service.vote(pair.pair_id, "B", "ann").recorded  # a fresh vote on the same pair


def test_reason_and_written_response_are_kept_with_the_vote(make_service):
    service = make_service()
    pair = service.next_pair("ann")
    with pytest.raises(ConfigError, match="vote A, B or Both bad"):
        service.vote(pair.pair_id, "tie", "ann", written="A better answer.")
    service.vote(pair.pair_id, "B", "ann", reason="  A is rude ", written="2 + 1 = 3.")
    [vote] = service.store.votes()
    assert service.store.vote_notes() == {vote.id: ("A is rude", "2 + 1 = 3.")}


def test_overlap_shows_a_voted_pair_to_a_second_annotator_once(make_service):
    service = make_service(overlap=2)
    pair = service.next_pair("ann")
    assert service.next_pair("bob").pair_id != pair.pair_id  # not voted yet: nothing to overlap
    service.vote(pair.pair_id, "A", "ann")
    shared = service.next_pair("bob")
    assert (shared.pair_id, shared.source) == (pair.pair_id, "overlap")
    assert service.next_pair("ann").pair_id != pair.pair_id  # never back to its first annotator
    service.vote(pair.pair_id, "B", "bob")
    assert service.next_pair("cat").source != "overlap"  # two votes: the pair is done
    report = service.quality()
    assert report.overlapped_pairs == 1 and report.percent_agreement == 0.0


def test_repeat_probes_show_a_voted_pair_again_with_sides_swapped(make_service):
    service = make_service(probe_rate=0.5)
    probes = []
    for _ in range(12):
        pair = service.next_pair("ann")
        if pair.source == "probe":
            probes.append(pair)
        service.vote(pair.pair_id, "A", "ann")
    assert probes, "at probe_rate 0.5, 12 serves without a probe would be a 1-in-4000 event with seed 0"
    links = service.store.probe_links()
    original = service.store.get_pair(links[probes[0].pair_id])
    assert (probes[0].response_a, probes[0].response_b) == (original.response_b, original.response_a)
    report = service.quality()
    assert report.probes == len(probes) and report.consistency == 0.0  # always "A" = always the other sample


def test_progress_counts_prompts_still_needing_labels(make_service):
    service = make_service()
    before = service.progress()
    pair = service.next_pair("ann")
    service.vote(pair.pair_id, "A", "ann")
    after = service.progress()
    assert (before.prompts, before.unlabelled, after.unlabelled, after.labelled) == (10, 10, 9, 1)


def test_labelling_settings_come_from_the_environment_and_are_validated(monkeypatch, tmp_path):
    from prefapp.config import labeling_from_env

    guide = tmp_path / "guide.md"
    guide.write_text("# Prefer correct answers", encoding="utf-8")
    monkeypatch.setenv("PREFAPP_OVERLAP", "3")
    monkeypatch.setenv("PREFAPP_PROBE_RATE", "0.1")
    monkeypatch.setenv("PREFAPP_GUIDELINES", str(guide))
    config = labeling_from_env()
    assert (config.overlap, config.probe_rate, config.guidelines) == (3, 0.1, "# Prefer correct answers")
    monkeypatch.setenv("PREFAPP_PROBE_RATE", "0.9")
    with pytest.raises(ConfigError, match="probe_rate=0.9 must be in"):
        labeling_from_env()
