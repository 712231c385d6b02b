"""Imported pairs through the one pipeline: human votes, imported, or both (with a cap on the imported share), with
provenance columns in the export, and the round trip import -> export -> `datasets` -> plain TRL DPO."""

from __future__ import annotations

import json
import math

import pytest
import torch
from datasets import load_from_disk

from prefapp.config import DEMO_MODEL_DIR, ConfigError
from prefapp.preferences.pair_import import import_source
from prefapp.preferences.resolve import ExportOptions, export_preferences, preference_dataset
from prefapp.store import Store
from tests.test_pair_import import HH_RLHF, SHAREGPT, TRL_STANDARD, write

QUESTIONS = [f"What is {i} + {i}?" for i in range(10)]


@pytest.fixture
def store(tmp_path):
    """Two A/B votes from the app and 10 imported pairs from a ShareGPT file."""
    with Store(tmp_path / "p.duckdb") as s:
        s.add_prompts(["Name a colour.", "Name a fruit."], source="test")
        for good, bad in (("Red.", "Dunno."), ("Apple.", "Go away.")):
            pair = s.add_pair(s.next_prompt(), good, bad, swapped=False, model_id="demo", adapter_id=None,
                              sampling={}, served_to="ann")
            s.record_vote(pair.id, "A", "ann")
        rows = [{"conversations": [{"from": "human", "value": q}], "chosen": {"from": "gpt", "value": f"{2 * i}."},
                 "rejected": {"from": "gpt", "value": "No idea, look it up."}} for i, q in enumerate(QUESTIONS)]
        import_source(s, str(write(tmp_path / "sharegpt.json", rows)))
        yield s


def origins(dataset) -> list[str]:
    return dataset["origin"] if "origin" in dataset.column_names else ["vote"] * len(dataset)


def test_votes_imported_or_both(store):
    votes, counts = preference_dataset(store, ExportOptions())
    assert len(votes) == 2 and "origin" not in votes.column_names  # the default is unchanged: votes only
    imported, counts = preference_dataset(store, ExportOptions(sources="imported"))
    assert origins(imported) == ["import"] * 10 and counts.rows == 10 and counts.imported == 10
    assert imported[0]["prompt"] == [{"role": "user", "content": QUESTIONS[0]}]
    assert imported[0]["chosen"] == [{"role": "assistant", "content": "0."}]
    assert (imported[0]["import_source"], imported[0]["import_format"], imported[0]["import_row"]) == (
        "sharegpt.json", "sharegpt", 0)
    both, counts = preference_dataset(store, ExportOptions(sources="both"))
    assert origins(both) == ["vote"] * 2 + ["import"] * 10 and counts.rows == 12
    assert both[0]["import_row"] == -1 and both[0]["annotator"] == "ann"
    assert "10 imported pairs" in counts.summary()


def test_the_cap_on_the_imported_share(store):
    capped, counts = preference_dataset(store, ExportOptions(sources="both", imported_share=0.5))
    assert origins(capped).count("import") == 2 and (counts.imported, counts.imported_capped) == (2, 8)
    again, _ = preference_dataset(store, ExportOptions(sources="both", imported_share=0.5))
    assert again["pair_id"] == capped["pair_id"]  # a seeded draw: the same rows every time
    assert "8 imported pairs left out by the cap" in counts.summary()
    for bad in (0.0, 1.5, -1):
        with pytest.raises(ConfigError, match="imported_share"):
            preference_dataset(store, ExportOptions(sources="both", imported_share=bad))


def test_round_trip_import_export_datasets_plain_trl_dpo(store, tmp_path):
    """Imported pairs, exported as the app exports them, read back with `datasets` and trained with TRL alone."""
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    result = export_preferences(store, tmp_path / "exports", "imported", ExportOptions(sources="both"))
    dataset = load_from_disk(str(result.dataset_dir))
    assert len(dataset) == 12 and set(dataset["origin"]) == {"vote", "import"}
    sha = json.loads(json.dumps(dataset[2]["import_sha256"]))
    assert len(sha) == 64
    tokenizer = AutoTokenizer.from_pretrained(DEMO_MODEL_DIR)
    tokenizer.pad_token = tokenizer.pad_token or tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(DEMO_MODEL_DIR, dtype=torch.float32)
    args = DPOConfig(output_dir=str(tmp_path / "trl"), per_device_train_batch_size=4, max_steps=3, learning_rate=1e-3,
                     max_length=128, report_to="none", logging_steps=1, save_strategy="no", disable_tqdm=True,
                     bf16=False, use_cpu=True)
    trainer = DPOTrainer(model=model, args=args, train_dataset=dataset.select_columns(["prompt", "chosen", "rejected"]),
                         processing_class=tokenizer, peft_config=LoraConfig(r=4, target_modules="all-linear",
                                                                            task_type="CAUSAL_LM"))
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if "lora_B" in n}
    trainer.train()
    losses = [row["loss"] for row in trainer.state.log_history if "loss" in row]
    assert len(losses) == 3 and all(math.isfinite(x) for x in losses)
    moved = [n for n, p in trainer.model.named_parameters() if n in before and not torch.equal(p, before[n])]
    assert moved, "the LoRA weights did not move"


@pytest.mark.parametrize("rows,name", [(TRL_STANDARD, "standard.jsonl"), (HH_RLHF, "hh.jsonl"),
                                       (SHAREGPT, "sharegpt.json")])
def test_each_paired_format_exports_as_conversational_rows(rows, name, tmp_path):
    with Store(tmp_path / "p.duckdb") as s:
        import_source(s, str(write(tmp_path / name, rows)))
        dataset, _ = preference_dataset(s, ExportOptions(sources="imported"))
    for row in dataset:
        assert row["prompt"][-1]["role"] == "user"
        assert [m["role"] for m in row["chosen"]] == [m["role"] for m in row["rejected"]] == ["assistant"]


@pytest.mark.parametrize("rows,name", [(TRL_STANDARD, "standard.jsonl"), (HH_RLHF, "hh.json")])
def test_prefapp_train_reads_any_paired_format_as_conversational_rows(rows, name, tmp_path):
    """`prefapp train --dataset` on a TRL standard or hh-rlhf file used to crash preflight with a traceback."""
    from transformers import AutoConfig, AutoTokenizer

    from prefapp.config import TrainConfig
    from prefapp.training.headless import load_training_data
    from prefapp.training.preflight import run_preflight

    data = load_training_data(str(write(tmp_path / name, rows)), tmp_path / "none.duckdb")
    assert len(data.dataset) >= 1 and data.dataset[0]["chosen"][0]["role"] == "assistant"
    report = run_preflight(data.dataset, TrainConfig(batch_size=1), AutoTokenizer.from_pretrained(DEMO_MODEL_DIR),
                           AutoConfig.from_pretrained(DEMO_MODEL_DIR))
    assert report.data.pairs == len(data.dataset)
