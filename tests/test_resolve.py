"""Export options over real votes in a real store: probes, disagreements, ties, both-bad, written responses."""

from __future__ import annotations

import pytest

from prefapp.config import ConfigError
from prefapp.preferences.resolve import DISAGREEMENT, ExportOptions, preference_dataset
from prefapp.store import Store
from tests.oracle import random_store, resolve_rows

SAMPLING = {"temperature": 1.0, "top_p": 0.95, "max_new_tokens": 8}


@pytest.fixture
def store(tmp_path):
    with Store(tmp_path / "r.duckdb") as s:
        s.add_prompts(["Q1", "Q2", "Q3", "Q4"], source="test")
        pairs = [s.add_pair(s.get_prompt(i), f"a{i}", f"b{i}", swapped=i % 2 == 0, model_id="m", adapter_id=None,
                            sampling=SAMPLING, served_to="ann") for i in (1, 2, 3, 4)]
        s.record_vote(pairs[0].id, "A", "ann")
        s.record_vote(pairs[0].id, "A", "bob")  # agreement
        s.record_vote(pairs[1].id, "A", "ann")
        s.record_vote(pairs[1].id, "B", "bob")  # split 1:1
        s.record_vote(pairs[1].id, "A", "cat")  # majority A
        s.record_vote(pairs[2].id, "tie", "ann")
        s.record_vote(pairs[3].id, "both_bad", "ann", written="a better answer")
        s.record_vote(s.add_probe(pairs[0].id, "ann").id, "B", "ann")  # a probe: never exported
        yield s


def rows(store, **options):
    dataset, counts = preference_dataset(store, ExportOptions(**options))
    return [(r["prompt"][0]["content"], r["chosen"][0]["content"], r["human_written"]) for r in dataset], counts


def test_majority_keeps_one_row_per_pair_and_counts_what_it_left_out(store):
    got, counts = rows(store)
    assert got == [("Q1", "a1", False), ("Q2", "a2", False)]
    assert (counts.votes, counts.probe_votes, counts.pairs, counts.disagreeing_pairs, counts.ties,
            counts.both_bad, counts.rows) == (8, 1, 4, 1, 1, 1, 2)
    assert "1 ties, 1 both bad, 1 repeat-probe votes" in counts.summary()


def test_drop_and_all(store):
    got, counts = rows(store, disagreement="drop")
    assert got == [("Q1", "a1", False)] and counts.dropped_disagreements == 1
    got, _ = rows(store, disagreement="all")
    assert sorted(got) == [("Q1", "a1", False), ("Q1", "a1", False), ("Q2", "a2", False), ("Q2", "a2", False),
                           ("Q2", "b2", False)]


def test_both_bad_with_a_written_response_becomes_two_human_written_rows(store):
    got, counts = rows(store, both_bad="written")
    assert [r for r in got if r[0] == "Q4"] == [("Q4", "a better answer", True)] * 2
    assert counts.human_written == 2 and counts.both_bad == 0
    with pytest.raises(ConfigError, match="use one of majority"):
        rows(store, disagreement="vote")


@pytest.mark.parametrize("seed", range(4))
def test_sql_resolution_matches_the_python_oracle_on_random_stores(tmp_path, seed):
    with Store(tmp_path / "random.duckdb") as store:
        random_store(store, seed)
        votes, links, notes = store.votes(), store.probe_links(), store.vote_notes()
        for disagreement in DISAGREEMENT:
            for both_bad in ("drop", "written"):
                for written in ("use", "ignore"):
                    options = ExportOptions(disagreement, both_bad, written)
                    dataset, counts = preference_dataset(store, options)
                    expected, expected_counts = resolve_rows(votes, links, notes, options)
                    assert dataset.to_list() == expected, options
                    assert counts == expected_counts, options
        preview, _ = preference_dataset(store, ExportOptions(), limit=3)
        assert preview.to_list() == resolve_rows(votes, links, notes, ExportOptions())[0][:3]
