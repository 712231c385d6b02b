"""Bring your own data in the app: the Data tab's pair import (detected format and three parsed rows before
anything is written, counts by source), the Train tab's Add round, and their named API endpoints."""

from __future__ import annotations

import gradio as gr
import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError

from prefapp.service import PrefService
from prefapp.ui.app import PrefUI
from tests.browser import served
from tests.test_adapters import save_adapter
from tests.test_pair_import import HH_RLHF, SHAREGPT, write


def test_data_tab_previews_before_writing_then_imports_and_counts(service: PrefService) -> None:
    ui = PrefUI(service)
    panel, data = ui.data.pairs_import, service.config.data_dir
    write(data / "sharegpt.json", SHAREGPT)
    shown = panel.on_preview(None, "sharegpt.json", "train", "auto")
    assert shown[panel.status].startswith("sharegpt.json: detected format sharegpt (ShareGPT / LLaMA-Factory")
    assert "3 rows -> 2 pairs, 1 to skip" in shown[panel.status]
    sample = shown[panel.sample]
    assert list(sample["chosen / completion"]) == ["4", "Red."] and sample["prompt"][1].startswith("system: Be brief.")
    assert service.imported_counts() == {}  # a preview writes nothing
    done = panel.on_import(None, "sharegpt.json", "train", "auto")
    assert done[panel.status].startswith("sharegpt.json read as sharegpt: added 2 pairs, 0 duplicate(s), skipped 1")
    assert done[panel.counts].values.tolist() == [["sharegpt.json", 2]]
    refreshed = ui.data.on_refresh()
    assert "**2** imported pairs from 1 source(s)" in refreshed[ui.data.counts]
    again = panel.on_import(None, "sharegpt.json", "train", "auto")
    assert "added 0 pairs, 2 duplicate(s)" in again[panel.status]


def test_import_pairs_and_add_round_through_gradio_client(service: PrefService, tmp_path) -> None:
    data = service.config.data_dir
    write(data / "hh.jsonl", HH_RLHF)
    save_adapter(data / "adapters" / "elsewhere")
    with served(PrefUI(service).blocks) as url:
        client = Client(url, verbose=False)
        counts = client.predict("hh.jsonl", "auto", "train", api_name="/import_pairs")
        assert (counts["format"], counts["added"], counts["duplicates"]) == ("hh-rlhf", 1, 0)
        assert counts["skipped"] == {"empty assistant message": 1, "no Human:/Assistant: turns": 1}
        assert client.predict("hh.jsonl", "auto", "train", api_name="/import_pairs")["added"] == 0
        with pytest.raises(AppError, match="outside the data directory"):
            client.predict("/etc/passwd", "auto", "train", api_name="/import_pairs")
        with pytest.raises(AppError, match="unknown format 'dpo'"):
            client.predict("hh.jsonl", "dpo", "train", api_name="/import_pairs")
        added = client.predict("adapters/elsewhere", api_name="/add_round")
        assert added.startswith("Round 1 added from ")
        with pytest.raises(AppError, match="is already round 1"):
            client.predict("adapters/elsewhere", api_name="/add_round")
        exported = client.predict("imported-only", "", "majority", "drop", "use", "imported", 0.0, api_name="/export")
        assert exported.startswith("Exported 1 pairs")
    assert [r.id for r in service.rounds()] == [1] and service.aligned == "round-1"


def test_train_tab_adds_a_round_and_refuses_a_foreign_base(service: PrefService) -> None:
    ui = PrefUI(service)
    data = service.config.data_dir
    save_adapter(data / "ours")
    save_adapter(data / "theirs", base="someone/another-model")
    done = ui.train.on_add_round("ours")
    assert done[ui.train.round_result].startswith("Round 1 added from ")
    assert list(done[ui.train.rounds_table]["round"]) == [1]
    with pytest.raises(gr.Error, match="was trained on someone/another-model"):
        ui.train.on_add_round("theirs")
    with pytest.raises(gr.Error, match="enter the adapter folder"):
        ui.train.on_add_round("  ")
