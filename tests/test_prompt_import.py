"""Prompt import from .csv, .parquet and a saved `datasets` folder, through the service into a real store."""

from __future__ import annotations

import pandas as pd
import pytest
from datasets import Dataset

from prefapp.config import ConfigError
from prefapp.preferences.prompt_import import cell_prompt, read_prompts, table_columns
from prefapp.service import PrefService
from prefapp.store import Store

CONVERSATION = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"},
                {"role": "user", "content": "What is 2 + 2?"}, {"role": "assistant", "content": "4"}]


def test_cells_become_prompts_or_say_why_not():
    assert cell_prompt("  What is 1 + 1? ") == "What is 1 + 1?"
    assert cell_prompt(CONVERSATION) == CONVERSATION[:3]  # cut after the last user turn
    assert cell_prompt([{"from": "human", "value": "Hey"}]) == [{"role": "user", "content": "Hey"}]  # ShareGPT
    for bad, why in (("", "empty"), (None, "not text"), ([{"role": "assistant", "content": "x"}], "without a user")):
        with pytest.raises(ValueError, match=why):
            cell_prompt(bad)


def test_csv_column_chooser_and_skips(tmp_path):
    path = tmp_path / "p.csv"
    pd.DataFrame({"id": [1, 2, 3], "question": ["What is 3 + 3?", None, "What is 3 + 3?"]}).to_csv(path, index=False)
    assert table_columns(str(path)) == ["id", "question"]
    read = read_prompts(str(path))  # "question" is a usual name: picked without asking
    assert (read.column, read.prompts) == ("question", ["What is 3 + 3?"] * 2)
    assert read.skipped == ["row 2: not text or a message list (NoneType)"]
    with pytest.raises(ConfigError, match="pick the prompt column: .* has id, question"):
        read_prompts(str(path), column="nope")


def test_service_imports_parquet_and_a_saved_multi_turn_dataset(app_config, demo_policy):
    service = PrefService(app_config, Store(app_config.db_path), demo_policy, seed=0)
    try:
        data = app_config.data_dir
        prompts = ["Name a colour.", "Name a colour.", "", "Name a fruit."]
        pd.DataFrame({"prompt": prompts}).to_parquet(data / "p.parquet")
        message = service.import_prompt_source("p.parquet")  # relative to the data directory
        assert message == ("added 2 prompt(s), skipped 1 duplicate(s) from column 'prompt'; "
                           "skipped 1 unusable row(s) (row 3: empty).")
        Dataset.from_dict({"conversation": [CONVERSATION]}).save_to_disk(str(data / "chats"))
        assert service.import_prompt_source(str(data / "chats"), column="conversation").startswith("added 1")
        assert service.store.get_prompt(3).messages == CONVERSATION[:3]
        with pytest.raises(ConfigError, match="outside the data directory"):
            service.import_prompt_source("/etc/hosts.csv")
    finally:
        service.close()


def test_a_hub_dataset_that_cannot_be_reached_names_the_alternatives(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # as on this machine: the Hub is never reached
    with pytest.raises(ConfigError, match=r"'someone/prompts' \(.*Hub.*\): give a .txt, .json, .jsonl, .csv or .parquet file"):
        read_prompts("someone/prompts")


def test_json_arrays_and_conversation_jsonl_import_with_the_column_chooser(tmp_path):
    """Issue 10, item 4: a .json array is read; .jsonl rows with conversation cells honour the chosen column."""
    import json

    rows = [{"id": 1, "conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello"}],
             "question": "What is 1 + 1?"}]
    (tmp_path / "a.json").write_text(json.dumps(rows))
    (tmp_path / "a.jsonl").write_text(json.dumps(rows[0]) + "\n")
    for name in ("a.json", "a.jsonl"):
        assert table_columns(str(tmp_path / name)) == ["id", "conversations", "question"]
        assert read_prompts(str(tmp_path / name)).prompts == [[{"role": "user", "content": "Hi"}]]
        assert read_prompts(str(tmp_path / name), column="question").prompts == ["What is 1 + 1?"]
    (tmp_path / "m.jsonl").write_text(json.dumps({"messages": CONVERSATION}) + "\n")
    assert read_prompts(str(tmp_path / "m.jsonl")).prompts == [CONVERSATION[:3]]  # cut after the last user turn


def test_hh_dialogues_are_cut_before_the_last_answer(tmp_path):
    hh = "\n\nHuman: Hi\n\nAssistant: Hello!\n\nHuman: What is 2 + 2?\n\nAssistant: 4"
    pd.DataFrame({"chosen": [hh], "rejected": [hh.replace(": 4", ": 5")]}).to_parquet(tmp_path / "hh.parquet")
    read = read_prompts(str(tmp_path / "hh.parquet"))  # no prompt column: the dialogues in `chosen` carry it
    assert read.column == "chosen" and read.prompts == [CONVERSATION[:3]]


def test_only_prompter_messages_of_an_openassistant_tree_become_prompts(tmp_path):
    from tests.test_pair_import import OASST_FLAT

    pd.DataFrame(OASST_FLAT).to_parquet(tmp_path / "oasst.parquet")
    read = read_prompts(str(tmp_path / "oasst.parquet"))
    assert read.column == "prompter messages"
    assert read.prompts == ["What is 2 + 2?", [{"role": "user", "content": "What is 2 + 2?"},
                                               {"role": "assistant", "content": "4"},
                                               {"role": "user", "content": "And 3 + 3?"}]]


def test_a_column_of_answers_is_refused(tmp_path):
    pd.DataFrame({"prompt_id": [1], "response": ["Paris."]}).to_csv(tmp_path / "r.csv", index=False)
    with pytest.raises(ConfigError, match="column 'response' of .* holds answers, not prompts: pick the prompt "
                                          "column, or import the file as preference pairs"):
        read_prompts(str(tmp_path / "r.csv"), column="response")
