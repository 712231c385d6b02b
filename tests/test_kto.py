"""KTO on single-sided feedback: the data (pairs unpaired, thumbs, both-bad), its weights and preflight, and a
real KTO round on the demo model through the service, with its adapter moved and the base untouched."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from prefapp.config import ConfigError, TrainConfig
from prefapp.training.kto import balance_weights, kto_dataset, kto_preflight

SAMPLING = {"temperature": 1.0, "top_p": 0.95, "max_new_tokens": 32}


def label_some(store, n_pairs: int = 6) -> None:
    """n_pairs A-votes, one both-bad vote with a written answer, and chat thumbs: every kind of label."""
    store.add_prompts([f"What is {i} + {i}?" for i in range(n_pairs + 1)], source="test")
    by_text = {p.text: p for p in store.least_served_prompts(100_000)}
    for i in range(n_pairs):
        prompt = by_text[f"What is {i} + {i}?"]
        pair = store.add_pair(prompt, f"{2 * i}.", f"I think {2 * i + 1}, idiot.", False, "demo", None, SAMPLING, "a")
        store.record_vote(pair.id, "A", "ann")
    last = by_text[f"What is {n_pairs} + {n_pairs}?"]
    bad = store.add_pair(last, "no idea", "whatever", False, "demo", None, SAMPLING, "a")
    store.record_vote(bad.id, "both_bad", "ann", written=f"{2 * n_pairs}.")
    store.rate_completion("What is 0 + 0?", "0.", True, "ann")  # also the chosen of pair 0: kept once
    store.rate_completion("What is 9 + 9?", "Go away.", False, "ann")


def test_weights_follow_the_balance_as_trls_docs_advise():
    assert balance_weights(10, 30) == (3.0, 1.0)
    assert balance_weights(30, 10) == (1.0, 3.0)
    assert balance_weights(7, 7) == (1.0, 1.0)
    assert balance_weights(0, 5) == (1.0, 1.0)
    for good, bad in ((10, 30), (30, 10), (3, 7)):
        d, u = balance_weights(good, bad)
        assert 1.0 <= d * good / (u * bad) <= 4 / 3  # TRL's recommended range (Eq. 8 of the KTO paper)


def test_every_kind_of_label_becomes_one_unpaired_row(service):
    label_some(service.store)
    dataset, counts = kto_dataset(service.store)
    assert counts.by_source == {"pairs": {"desirable": 6, "undesirable": 6},
                                "chat": {"desirable": 0, "undesirable": 1},  # its thumbs up duplicates pair 0
                                "both_bad": {"desirable": 0, "undesirable": 2},
                                "written": {"desirable": 1, "undesirable": 0}}
    assert (counts.desirable, counts.undesirable, counts.duplicates, len(dataset)) == (7, 9, 1, 16)
    row = dataset[0]
    assert row["prompt"] == [{"role": "user", "content": "What is 0 + 0?"}]
    assert row["completion"] == [{"role": "assistant", "content": "0."}] and row["label"] is True
    report = kto_preflight(dataset, counts, TrainConfig(method="kto", max_length=20), service._own_tokenizer())
    assert report.ok and report.weights == (1.2858, 1.0)
    # prompts are 12 tokens, "I think 1, idiot." makes 23 in all: 20 cuts those answers, said, not hidden
    assert report.dropped == 0 and report.truncated >= 6 and report.suggested_max_length == 32
    assert "7 desirable / 9 undesirable" in report.markdown()
    tiny = kto_preflight(dataset, counts, TrainConfig(method="kto", batch_size=1), service._own_tokenizer())
    assert not tiny.ok and "batch_size 2" in tiny.errors[0]


def test_a_kto_round_trains_on_the_demo_model_and_moves_the_adapter(service):
    with pytest.raises(ConfigError, match="method='ipo'"):
        TrainConfig(method="ipo")
    with pytest.raises(ConfigError, match="no labelled completions"):
        service.start_training(TrainConfig(method="kto"))
    label_some(service.store)
    base_before = {k: v.clone() for k, v in service.policy.model.state_dict().items()}
    config = TrainConfig(method="kto", batch_size=4, num_epochs=1, max_length=64, learning_rate=1e-3, save_steps=0)
    round_id = service.start_training(config)
    result = service.wait_training(timeout=300)
    assert result is not None and not result.cancelled and result.steps == 4  # 16 rows / batch 4
    rnd = service.store.get_round(round_id)
    assert rnd.status == "finished" and rnd.config["method"] == "kto" and rnd.n_pairs == 16
    assert result.metrics["desirable_weight"] == 1.2858 and "kl" in result.history[0]
    weights = load_file(result.adapter_dir / "adapter_model.safetensors")
    lora_b = [v for k, v in weights.items() if "lora_B" in k]
    assert lora_b and all(v.abs().sum() > 0 for v in lora_b)  # B starts at zero: KTO moved every one
    after = service.policy.model.get_base_model().state_dict() if hasattr(service.policy.model, "get_base_model") \
        else service.policy.model.state_dict()
    for name, before in base_before.items():  # training loads its own copy: the served base is untouched
        key = next(k for k in after if k.replace("base_layer.", "") == name)
        assert torch.equal(after[key], before)
    assert service.aligned == f"round-{round_id}"  # the KTO round is a round like any other
