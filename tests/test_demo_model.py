"""The bundled demo model in data/demo-model: loads with plain Auto classes, chats, and samples with the intended flaws."""

from __future__ import annotations

import json
import random

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from prefapp.demo import task as demo_task
from prefapp.config import DEMO_MODEL_DIR, DEMO_PROMPTS_PATH
from prefapp.demo.model import (
    DEMO_HELDOUT_PROMPTS_PATH,
    DemoModelConfig,
    build_demo_model,
    dir_size_mb,
    new_model,
    quality,
    sample_answers,
    write_prompt_files,
)

N_PROMPTS = 32  # per split; two samples each -> 128 judged answers, a few seconds on 2 cores


@pytest.fixture(scope="module")
def tok():
    return AutoTokenizer.from_pretrained(DEMO_MODEL_DIR)


@pytest.fixture(scope="module")
def model():
    return AutoModelForCausalLM.from_pretrained(DEMO_MODEL_DIR).eval()


@pytest.fixture(scope="module")
def prompts() -> list[str]:
    return [t.question for s in demo_task.SPLITS for t in demo_task.sample_tasks(N_PROMPTS, seed=11, split=s)]


def test_directory_is_small_and_complete():
    names = {p.name for p in DEMO_MODEL_DIR.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "generation_config.json", "README.md"} <= names
    assert dir_size_mb(DEMO_MODEL_DIR) <= 20


def test_chat_template_renders_exact_string(tok):
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What is 7 + 5?"},
        {"role": "assistant", "content": "7 + 5 = 12."},
        {"role": "user", "content": "What is the capital of France?"},
    ]
    text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert text == (
        "<|system|>\nBe brief.<|end|>\n<|user|>\nWhat is 7 + 5?<|end|>\n<|assistant|>\n7 + 5 = 12.<|end|>\n"
        "<|user|>\nWhat is the capital of France?<|end|>\n<|assistant|>\n"
    )


def test_special_tokens(tok, model):
    assert tok.eos_token == "<|end|>" and tok.pad_token == "<|pad|>" and tok.bos_token is None
    for t in ("<|system|>", "<|user|>", "<|assistant|>", "<|end|>", "<|pad|>"):
        assert len(tok(t, add_special_tokens=False)["input_ids"]) == 1, t
    assert tok("What is 7 + 5?")["input_ids"][0] != tok.convert_tokens_to_ids("<|end|>")  # no BOS or eos added
    gc = model.generation_config
    assert (gc.eos_token_id, gc.pad_token_id) == (tok.eos_token_id, tok.pad_token_id)
    assert model.config.tie_word_embeddings and 1e6 < model.num_parameters() < 10e6


@pytest.mark.parametrize("text", ["héllo wörld", "こんにちは 🙂", "tab\tand\nnewline", "What is 7 + 5?"])
def test_byte_level_tokenizer_round_trips_any_text(tok, text):
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert tok.unk_token_id not in ids
    assert tok.decode(ids) == text


def test_generation_stops_at_end(tok, model, prompts):
    torch.manual_seed(0)
    tok.padding_side = "left"
    texts = [tok.apply_chat_template([{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True)
             for p in prompts]  # fmt: skip
    enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    out = model.generate(**enc, do_sample=True, temperature=1.0, top_p=0.95, max_new_tokens=64)
    new = out[:, enc["input_ids"].shape[1] :]
    stopped = (new == tok.eos_token_id).any(dim=1).float().mean().item()
    assert stopped >= 0.95


@pytest.fixture(scope="module")
def rates(tok, model, prompts) -> dict:
    a = sample_answers(model, tok, prompts, seed=1)
    b = sample_answers(model, tok, prompts, seed=2)
    return quality(prompts + prompts, a + b, b + a)


def test_samples_are_well_formed(rates):
    assert rates["well_formed"] >= 0.85, rates


def test_samples_are_often_but_not_always_correct(rates):
    assert 0.45 <= rates["correct"] <= 0.92, rates


@pytest.mark.parametrize("flaw", ["rude", "rambling"])
def test_samples_show_each_flaw_sometimes(rates, flaw):
    assert 0.04 <= rates[flaw] <= 0.35, rates


def test_annotator_finds_preferences_between_two_samples(rates):
    votes = rates["annotator"]
    assert votes["A"] + votes["B"] >= 0.2, votes  # enough decisive pairs for DPO
    assert votes["both_bad"] <= 0.4, votes


def test_answers_questions_typed_casually(tok, model, prompts):
    rng = random.Random(0)
    typed = [demo_task.typed_variant(p, rng) for p in prompts]
    answers = sample_answers(model, tok, typed, seed=3)
    assert quality(typed, answers)["well_formed"] >= 0.8


def test_an_untrained_model_fails_the_quality_bar(tok, prompts):
    torch.manual_seed(0)
    random_model = new_model(DemoModelConfig(), tok).eval()
    answers = sample_answers(random_model, tok, prompts[:16], seed=0, max_new_tokens=24)
    assert quality(prompts[:16], answers)["well_formed"] < 0.2


def test_shipped_prompt_files_are_the_disjoint_splits():
    label = [json.loads(line)["prompt"] for line in DEMO_PROMPTS_PATH.read_text().splitlines()]
    heldout = [json.loads(line)["prompt"] for line in DEMO_HELDOUT_PROMPTS_PATH.read_text().splitlines()]
    assert len(label) == 1000 and len(heldout) == 300
    assert {demo_task.split_of(p) for p in label} == {"label"}
    assert {demo_task.split_of(p) for p in heldout} == {"heldout"}
    assert all(demo_task.parse_task(p) for p in label + heldout)


def test_prompt_files_regenerate_identically(tmp_path):
    write_prompt_files(tmp_path)
    assert (tmp_path / "demo.jsonl").read_bytes() == DEMO_PROMPTS_PATH.read_bytes()
    assert (tmp_path / "demo_heldout.jsonl").read_bytes() == DEMO_HELDOUT_PROMPTS_PATH.read_bytes()


def test_build_is_reproducible(tmp_path):
    cfg = DemoModelConfig(steps=3, batch_size=8, eval_prompts=4, tokenizer_corpus=24, num_layers=1, hidden_size=64,
                          intermediate_size=128)  # fmt: skip
    metrics = [build_demo_model(tmp_path / name, cfg=cfg, prompts_dir=None) for name in ("a", "b")]
    for name in ("model.safetensors", "tokenizer.json", "chat_template.jinja"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    assert metrics[0]["samples"] == metrics[1]["samples"]
    tok = AutoTokenizer.from_pretrained(tmp_path / "a")
    assert AutoModelForCausalLM.from_pretrained(tmp_path / "a").config.vocab_size == len(tok)
