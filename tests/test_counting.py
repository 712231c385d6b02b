"""The figures each vote keeps up to date (migration 010_vote_tallies) against the old queries that grouped every
vote, on randomized stores, after undos, on an upgraded old file and after a bulk `recount()`."""

from __future__ import annotations

import duckdb
import pytest

from prefapp.store import Store
from prefapp.store.migrations import MIGRATIONS, migrate
from tests import oracle


def assert_figures_match(store: Store) -> None:
    for overlap in (1, 2, 3, 4):
        assert store.labelling_progress(overlap) == oracle.labelling_progress(store, overlap)
        for name in ("ann0", "ann3", "Zoë", "nobody"):
            pair = store.pair_for_overlap(name, overlap)
            assert (pair.id if pair else None) == oracle.pair_for_overlap(store, name, overlap)
    counts = store.vote_counts("ann1")
    by_choice, by_annotator = oracle.vote_counts(store)
    assert (counts.by_choice, counts.by_annotator) == (by_choice, by_annotator)
    assert list(counts.by_annotator) == list(by_annotator)  # same order: most votes first
    assert counts.total == sum(by_choice.values()) and counts.mine == by_annotator.get("ann1", 0)


@pytest.mark.parametrize("seed", range(3))
def test_tallies_match_the_old_queries_on_random_stores_and_after_undo(tmp_path, seed):
    with Store(tmp_path / "t.duckdb") as store:
        oracle.random_store(store, seed)
        assert_figures_match(store)
        for name in ("ann0", "ann1", "ann1", "Zoë", "nobody"):
            store.undo_last_vote(name)
        assert_figures_match(store)


def test_an_old_file_gets_its_tallies_and_recount_repairs_bulk_writes(tmp_path):
    path = tmp_path / "old.duckdb"
    with Store(path) as store:
        oracle.random_store(store, seed=7)
        expected = [oracle.labelling_progress(store, k) for k in (1, 2, 3)], oracle.vote_counts(store)
    with duckdb.connect(str(path)) as con:  # make it an old file: no tallies, as before migration 010
        con.execute("DROP TABLE vote_tallies")
        con.execute("ALTER TABLE pairs DROP COLUMN n_votes")
        con.execute("ALTER TABLE prompts DROP COLUMN n_votes")
        con.execute("DELETE FROM _migrations WHERE name = '010_vote_tallies'")
        assert migrate(con) == ["010_vote_tallies"]
    with Store(path) as store:
        counts = store.vote_counts()
        assert ([store.labelling_progress(k) for k in (1, 2, 3)], (counts.by_choice, counts.by_annotator)) == expected
        store._cur().execute("DELETE FROM votes WHERE id % 3 = 0")  # bulk SQL that bypasses the tallies
        store.recount()
        assert_figures_match(store)
    assert "010_vote_tallies" in [name for name, _ in MIGRATIONS]
