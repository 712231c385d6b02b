import json

import pytest
from datasets import Dataset, load_from_disk

from prefapp.config import ConfigError
from prefapp.preferences.export import load_preferences
from prefapp.preferences.resolve import export_preferences, preference_dataset
from prefapp.store import Store


@pytest.fixture
def voted_store(tmp_path):
    """A real DuckDB file with one vote of each kind (A, B, tie, both_bad)."""
    store = Store(tmp_path / "votes.duckdb")
    store.add_prompts(["What is 2 + 3?", "What is the capital of Spain?", "What is 4 * 4?", "Say hi."], source="test")
    for choice, annotator in [("A", "ann"), ("B", "bob"), ("tie", "ann"), ("both_bad", "bob")]:
        prompt = store.next_prompt()
        pair = store.add_pair(prompt, f"left {choice}", f"right {choice}", swapped=False, model_id="m",
                              adapter_id=None, sampling={"temperature": 1.0}, served_to=annotator)
        store.record_vote(pair.id, choice, annotator)
    yield store
    store.close()


def test_rows_pick_the_shown_winner(voted_store):
    dataset, counts = preference_dataset(voted_store)
    assert (counts.votes, counts.rows, counts.ties, counts.both_bad) == (4, 2, 1, 1)
    rows = {r["chosen"][0]["content"]: r for r in dataset}
    assert rows["left A"]["rejected"] == [{"role": "assistant", "content": "right A"}]
    assert rows["right B"]["rejected"] == [{"role": "assistant", "content": "left B"}]
    assert rows["left A"]["prompt"][-1]["role"] == "user"


def test_export_round_trip(voted_store, tmp_path):
    result = export_preferences(voted_store, tmp_path / "exports", "round-1")
    assert result.counts.pairs == 2
    loaded = load_from_disk(str(result.dataset_dir))
    assert {"prompt", "chosen", "rejected"} <= set(loaded.column_names)
    assert len(loaded) == 2
    from_parquet = Dataset.from_parquet(str(result.parquet_path))
    assert sorted(r["chosen"][0]["content"] for r in from_parquet) == ["left A", "right B"]
    assert load_preferences(result.dataset_dir).num_rows == 2
    assert load_preferences(result.parquet_path).num_rows == 2
    with pytest.raises(ConfigError, match="already exists"):
        export_preferences(voted_store, tmp_path / "exports", "round-1")


def test_export_refuses_bad_names_and_empty_data(voted_store, tmp_path):
    with pytest.raises(ConfigError, match="no slashes"):
        export_preferences(voted_store, tmp_path / "exports", "../escape")
    with Store(tmp_path / "ties.duckdb") as ties_only:
        ties_only.add_prompts(["Q"], source="test")
        pair = ties_only.add_pair(ties_only.next_prompt(), "l", "r", swapped=False, model_id="m", adapter_id=None,
                                  sampling={}, served_to="ann")
        ties_only.record_vote(pair.id, "tie", "ann")
        with pytest.raises(ConfigError, match="label more pairs"):
            export_preferences(ties_only, tmp_path / "exports", "nothing")


def test_loading_a_file_without_preference_columns_names_them(tmp_path):
    path = tmp_path / "wrong.jsonl"
    path.write_text(json.dumps({"question": "q", "answer": "a"}) + "\n")
    with pytest.raises(ConfigError, match="lacks column\\(s\\) prompt, chosen, rejected"):
        load_preferences(path)
    with pytest.raises(ConfigError, match="does not exist"):
        load_preferences(tmp_path / "missing.parquet")
