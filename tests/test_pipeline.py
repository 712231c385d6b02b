"""One preference pipeline: `prefapp export` (a real subprocess) and the app's export give the same rows, on a store
with repeat probes, overlaps that disagree, ties, both-bad and human-written responses; a vote and its note are
one transaction."""

from __future__ import annotations

import duckdb
import pytest
from datasets import load_from_disk

from prefapp.preferences.resolve import ExportOptions, preference_dataset
from prefapp.store import Store
from prefapp.training.headless import load_training_data
from tests.test_cli import prefapp

SAMPLING = {"temperature": 1.0, "top_p": 0.95, "max_new_tokens": 8}


def build_store(path) -> None:
    """Ten prompts: agreement, a 2:1 majority, a 1:1 split, a tie, both-bad with and without a written response,
    an A vote with a written response, and a repeat probe that contradicts its original."""
    with Store(path) as s:
        s.add_prompts([f"What is {i} + 1?" for i in range(10)], source="test")
        pairs = [s.add_pair(s.get_prompt(i + 1), f"{i} + 1 = {i + 1}.", f"{i} + 1 = {i + 1}. Obviously.",
                            swapped=i % 3 == 0, model_id="prefapp-demo", adapter_id=None, sampling=SAMPLING,
                            served_to="ann") for i in range(10)]
        ids = [p.id for p in pairs]
        for pair_id, choice, annotator in [
            (ids[0], "A", "ann"), (ids[0], "A", "bob"),  # agreement
            (ids[1], "A", "ann"), (ids[1], "B", "bob"), (ids[1], "A", "cat"),  # majority A
            (ids[2], "A", "ann"), (ids[2], "B", "bob"),  # split: dropped under majority
            (ids[3], "tie", "ann"), (ids[4], "both_bad", "bob"), (ids[6], "B", "cat"), (ids[7], "A", "ann"),
            (ids[8], "B", "bob"), (ids[9], "A", "cat"),
        ]:
            s.record_vote(pair_id, choice, annotator)
        s.record_vote(ids[5], "both_bad", "ann", reason="both rude", written="5 + 1 = 6.")
        s.record_vote(ids[6], "A", "ann", written="6 + 1 = 7, exactly.")  # overlaps cat's B: a disagreement
        s.record_vote(s.add_probe(ids[0], "ann").id, "A", "ann")  # sides swapped: A now contradicts the original
        s.record_vote(s.add_probe(ids[7], "ann").id, "B", "ann")


def rows(dataset) -> list[dict]:
    return dataset.to_list()


@pytest.mark.parametrize("options", [ExportOptions(), ExportOptions(disagreement="all", both_bad="written"),
                                     ExportOptions(disagreement="drop", written="ignore")])
def test_cli_export_and_app_export_are_row_for_row_identical(tmp_path, demo_choice, options):
    from prefapp.config import AppConfig
    from prefapp.service import PrefService

    data = tmp_path / "data"
    build_store(data / "prefapp.duckdb")
    done = prefapp("export", "--data-dir", str(data), "--name", "cli", "--disagreement", options.disagreement,
                   "--both-bad", options.both_bad, "--written", options.written)
    assert done.returncode == 0, done.stderr
    cli_rows = rows(load_from_disk(str(data / "exports" / "cli")))
    trained_on = load_training_data(None, data / "prefapp.duckdb", options)  # `prefapp train` on the store

    service = PrefService.open(AppConfig(model="demo", data_dir=data), choice=demo_choice, seed=0)
    try:
        app = service.export("app", options)
        train_set, counts = service._preferences(options)  # what the app's Train tab trains on
    finally:
        service.close()
    app_rows = rows(load_from_disk(str(app.dataset_dir)))
    assert cli_rows == app_rows and len(app_rows) == counts.pairs > 0
    assert app.detail in done.stdout  # the same counts of what was left out, in the same words
    assert rows(trained_on.dataset) == rows(train_set.select_columns(["prompt", "chosen", "rejected"]))
    assert not any(r["pair_id"] not in {c["pair_id"] for c in cli_rows} for r in app_rows)


def test_the_pipeline_applies_every_rule(tmp_path):
    build_store(tmp_path / "p.duckdb")
    with Store(tmp_path / "p.duckdb") as store:
        dataset, counts = preference_dataset(store, ExportOptions(both_bad="written"))
        probes = set(store.probe_links())
    got = rows(dataset)
    assert not probes & {r["pair_id"] for r in got}  # repeat-probe votes never become rows
    assert (counts.votes, counts.probe_votes, counts.disagreeing_pairs, counts.dropped_disagreements) == (17, 2, 3, 2)
    assert [r["chosen"][0]["content"] for r in got if r["human_written"]] == ["5 + 1 = 6."] * 2
    assert counts.ties == 1 and counts.both_bad == 1 and counts.rows == len(got) == 7


def test_a_vote_and_its_note_are_one_transaction(tmp_path):
    with Store(tmp_path / "t.duckdb") as store:
        store.add_prompts(["Q"], source="test")
        pair = store.add_pair(store.next_prompt(), "a", "b", swapped=False, model_id="m", adapter_id=None,
                              sampling=SAMPLING, served_to="ann")
        # A stray note already holds the id the next vote gets: writing the note fails, and so must the vote.
        (next_id,) = store._cur().execute("SELECT nextval('votes_id_seq')").fetchone()
        store._cur().execute("INSERT INTO vote_notes VALUES (?, 'stray', NULL)", [next_id + 1])
        with pytest.raises(duckdb.ConstraintException):
            store.record_vote(pair.id, "A", "ann", reason="why", written="better")
        assert store.votes() == []  # no vote without its note
        store._cur().execute("DELETE FROM vote_notes")
        result = store.record_vote(pair.id, "A", "ann", reason=" why ", written="better")
        assert store.vote_notes() == {result.vote.id: ("why", "better")}
        again = store.record_vote(pair.id, "B", "ann", reason="changed my mind")  # a repeat changes nothing
        assert not again.created and store.vote_notes() == {result.vote.id: ("why", "better")}
