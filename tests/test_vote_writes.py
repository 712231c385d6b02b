"""Group commit (prefapp.store.vote_writes): votes queued while the write lock is held are written in one
transaction, each answered as it would be alone, and the per-vote figures equal a full recount afterwards."""

from __future__ import annotations

import random
import threading
import time

import duckdb
import pytest

from prefapp.store import Store, VoteResult
from prefapp.store import store as store_module
from tests.test_click_figures import NAMES, assert_clicks_match, spread_store


def vote_in_threads(store: Store, votes: list[tuple[str, str, str]]) -> list[VoteResult | Exception]:
    """Cast `votes` (pair id, choice, annotator) from one thread each while a batch is being written, so all of them
    are queued when it ends: the next batch. Each thread's result or error, in order."""
    outcomes: list[VoteResult | Exception | None] = [None] * len(votes)

    def cast(i: int) -> None:
        try:
            outcomes[i] = store.record_vote(*votes[i])
        except Exception as exc:  # noqa: BLE001 - the test compares errors too
            outcomes[i] = exc

    queue = store._votes_queue
    with queue._changed:
        queue._writing = True  # as while another batch is written
    threads = [threading.Thread(target=cast, args=(i,)) for i in range(len(votes))]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 30
    while len(queue._pending) < len(votes):  # every vote queued before any is written
        assert time.monotonic() < deadline, "the votes never reached the queue"
        time.sleep(0.005)
    with queue._changed:
        queue._writing = False
        queue._changed.notify_all()
    for thread in threads:
        thread.join()
    return outcomes  # type: ignore[return-value]


def test_votes_queued_together_are_written_in_one_commit_each_answered_as_alone(tmp_path):
    with Store(tmp_path / "g.duckdb") as store:
        ids = spread_store(store, seed=3, n_pairs=20)
        store.record_vote(ids[0], "A", "ann0")  # stored before the batch: the batch's repeat of it is answered by it
        writes = store._writes
        votes = [(ids[1], "A", "ann0"), (ids[1], "B", "ann1"), (ids[1], "tie", "ann2"),  # one pair, three voters
                 (ids[2], "B", "ann0"), (ids[2], "A", "ann0"),  # a double click: the first one counts
                 (ids[0], "B", "ann0"),  # a repeat of a stored vote
                 ("no-such-pair", "A", "ann1"),  # fails alone
                 (ids[3], "both_bad", "Zoë"), (ids[4], "A", "ann1")]
        outcomes = vote_in_threads(store, votes)

        assert store._writes == writes + 1  # one commit for the whole batch
        error = outcomes[6]
        assert isinstance(error, ValueError) and "unknown pair 'no-such-pair'" in str(error)
        results = [o for o in outcomes if isinstance(o, VoteResult)]
        assert [r.created for r in results] == [True, True, True, True, False, False, True, True]
        assert outcomes[4].vote == outcomes[3].vote and outcomes[4].vote.choice == "B"
        assert outcomes[5].vote.choice == "A" and outcomes[5].vote.pair_id == ids[0]
        stored = sorted((v.pair_id, v.annotator, v.choice) for v in store.votes())
        assert stored == sorted([(ids[0], "ann0", "A"), (ids[1], "ann0", "A"), (ids[1], "ann1", "B"),
                                 (ids[1], "ann2", "tie"), (ids[2], "ann0", "B"), (ids[3], "Zoë", "both_bad"),
                                 (ids[4], "ann1", "A")])
        for result in results:  # the counts as of the batch's commit
            assert result.counts == store.vote_counts(result.vote.annotator)
        assert_clicks_match(store)
        assert store.get_pair(ids[1]) is not None and _n_votes(store, ids[1]) == 3


def test_notes_of_a_batch_go_with_their_votes(tmp_path):
    with Store(tmp_path / "n.duckdb") as store:
        ids = spread_store(store, seed=4, n_pairs=6)
        outcomes = vote_in_threads(store, [(ids[0], "A", "ann0", "clearer", ""), (ids[1], "B", "ann0", "", "Mine."),
                                           (ids[2], "A", "ann1")])
        notes = store.vote_notes()
        assert notes == {outcomes[0].vote.id: ("clearer", None), outcomes[1].vote.id: (None, "Mine.")}


def test_a_failing_batch_writes_each_vote_alone(tmp_path, monkeypatch):
    real = store_module.commit_votes

    def fails_in_company(cur, batch):
        if len(batch) > 1:
            raise duckdb.ConversionException("a batch statement failed")
        return real(cur, batch)

    monkeypatch.setattr(store_module, "commit_votes", fails_in_company)
    with Store(tmp_path / "f.duckdb") as store:
        ids = spread_store(store, seed=5, n_pairs=8)
        outcomes = vote_in_threads(store, [(pair_id, "A", "ann0") for pair_id in ids[:5]])
        assert all(isinstance(o, VoteResult) and o.created for o in outcomes)
        assert sorted(v.pair_id for v in store.votes()) == sorted(ids[:5])
        assert_clicks_match(store)


@pytest.mark.parametrize("seed", [0, 1])
def test_random_concurrent_voting_keeps_every_figure_equal_to_a_recount(tmp_path, seed):
    rng = random.Random(seed)
    with Store(tmp_path / "r.duckdb") as store:
        ids = spread_store(store, seed, n_pairs=60)
        for _ in range(4):
            votes = [(rng.choice(ids), rng.choice(["A", "B", "tie", "both_bad"]), rng.choice(NAMES))
                     for _ in range(rng.randint(2, 25))]
            outcomes = vote_in_threads(store, votes)
            assert all(isinstance(o, VoteResult) for o in outcomes)
            undone = store.undo_last_vote(rng.choice(NAMES))  # undos stay single and keep the figures too
            assert undone is None or undone.pair_id in ids
        assert_clicks_match(store)
        keys = [(v.pair_id, v.annotator) for v in store.votes()]
        assert len(keys) == len(set(keys))


def _n_votes(store: Store, pair_id: str) -> int:
    return store._cur().execute("SELECT n_votes FROM pairs WHERE id = ?", [pair_id]).fetchone()[0]
