"""Pairs worth a label, on the real demo model: the identical-pair rule, implicit reward margins with the adapter
on and off against a direct log-prob computation, and the coverage/active mix of the real queue in DuckDB."""

from __future__ import annotations

import pytest
import torch

from prefapp.config import ConfigError, LabelingConfig, SamplingConfig
from prefapp.labeling.active import Mix, Scorer, Selection, choose, pair_margins, sequence_logps
from prefapp.labeling.backends import LocalGenerator
from prefapp.labeling.distinct import normalize, same, sample_pairs
from prefapp.labeling.pair_queue import PairQueue
from prefapp.models import Policy
from prefapp.store import Store

SAMPLING = SamplingConfig(max_new_tokens=16)


@pytest.fixture(scope="module")
def adapter_dir(tmp_path_factory, demo_choice):
    """A LoRA adapter with random (non-zero) weights: the round's policy differs from the base everywhere."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(demo_choice.source, dtype=torch.float32)
    lora = LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", init_lora_weights=False, task_type="CAUSAL_LM")
    path = tmp_path_factory.mktemp("adapter") / "round-1"
    get_peft_model(base, lora).save_pretrained(str(path))
    return path


@pytest.fixture(scope="module")
def round_policy(demo_choice, adapter_dir) -> Policy:
    policy = Policy(demo_choice, device="cpu")
    policy.load_adapter("round-1", adapter_dir)
    return policy


@pytest.fixture
def store(tmp_path):
    with Store(tmp_path / "a.duckdb") as s:
        s.add_prompts([f"What is {i} + {i + 1}?" for i in range(40)], source="test")
        yield s


# -- the identical-pair rule ----------------------------------------------------------------------------------


def test_same_is_whitespace_insensitive_and_near_is_configurable():
    assert normalize("  The answer\n is   4. ") == "The answer is 4."
    assert same("The answer is 4.", "The  answer\tis 4.\n")
    assert not same("The answer is 4.", "The answer is 5.")
    assert same("The answer is 4.", "The answer is 5.", near=0.9)  # one character of 16 differs
    assert not same("The answer is 4.", "Four, I think.", near=0.9)
    with pytest.raises(ConfigError, match="near_identical"):
        LabelingConfig(near_identical=1.5).validate()


def test_a_model_that_writes_one_answer_is_given_up_never_served(demo_policy):
    greedy = SamplingConfig(temperature=0.01, max_new_tokens=16)  # near-greedy: both samples (almost) always equal
    torch.manual_seed(0)
    drawn = sample_pairs(LocalGenerator(demo_policy), [[{"role": "user", "content": "What is 2 + 3?"}]] * 4, greedy,
                         None)
    assert drawn == [None] * 4  # resampled, second sample hotter (0.015, 0.02): still one answer: given up


def test_served_pairs_are_never_identical_and_replacements_are_recorded(demo_policy, store):
    torch.manual_seed(0)
    low = SamplingConfig(temperature=0.5, max_new_tokens=16)  # often identical on the demo model
    queue = PairQueue(demo_policy, store, low, target=16, batch_size=16, seed=0, resamples=1)
    queue.start()
    try:
        assert queue.wait_ready(1, timeout=300)
        ready = [queue.take() for _ in range(queue.status().ready)]
    finally:
        queue.stop()
    for r in ready:
        assert not same(r.first, r.second)
        store.add_pair(r.prompt, r.first, r.second, False, "demo", None, low.to_dict(), "t", origin=r.origin)
    stats = store.identical_stats()
    assert stats.served == len(ready) and stats.served + stats.dropped == 16
    assert stats.identical_draws > 0  # this temperature does draw identical pairs: the rule did work
    assert stats.resampled == sum(r.origin["identical_draws"] > 0 for r in ready)
    assert stats.hotter == sum(r.origin["second_temperature"] is not None for r in ready)
    assert all(r.origin["second_temperature"] in (None, 0.75, 1.0) for r in ready)


# -- implicit reward margins --------------------------------------------------------------------------------------


def _direct_logp(model, tokenizer, prompt: list[dict], completion: str) -> float:
    """Log-prob of the completion computed the plain way: one unpadded sequence, one forward pass."""
    prompt_ids = tokenizer(tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True),
                           add_special_tokens=False)["input_ids"]
    full = tokenizer(tokenizer.apply_chat_template(prompt + [{"role": "assistant", "content": completion}],
                                                   tokenize=False), add_special_tokens=False)["input_ids"]
    assert full[:len(prompt_ids)] == prompt_ids  # the demo template renders the prompt as a prefix
    with torch.no_grad():
        logits = model(torch.tensor([full])).logits[0]
    logps = torch.log_softmax(logits, -1)
    return sum(float(logps[t - 1, full[t]]) for t in range(len(prompt_ids), len(full)))


def test_margins_match_a_direct_log_prob_computation_with_the_adapter_on_and_off(round_policy, demo_choice,
                                                                                   adapter_dir):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    prompts = [[{"role": "user", "content": "What is 2 + 3?"}], [{"role": "user", "content": "Name a colour."}]]
    firsts, seconds = ["5.", "Red, I would say, or maybe blue."], ["The answer is 6.", "Blue."]
    base = AutoModelForCausalLM.from_pretrained(demo_choice.source, dtype=torch.float32).eval()
    base_lp = [_direct_logp(base, round_policy.tokenizer, p, c) for p, c in zip(prompts * 2, firsts + seconds)]
    tuned = PeftModel.from_pretrained(base, str(adapter_dir)).eval()
    tuned_lp = [_direct_logp(tuned, round_policy.tokenizer, p, c) for p, c in zip(prompts * 2, firsts + seconds)]
    assert sequence_logps(round_policy, prompts * 2, firsts + seconds, None) == pytest.approx(base_lp, abs=1e-4)
    assert sequence_logps(round_policy, prompts * 2, firsts + seconds, "round-1") == pytest.approx(tuned_lp, abs=1e-4)
    beta = 0.1
    expected = [beta * ((tuned_lp[i] - base_lp[i]) - (tuned_lp[2 + i] - base_lp[2 + i])) for i in range(2)]
    margins = pair_margins(round_policy, prompts, firsts, seconds, Scorer("round-1", 1, beta))
    assert margins == pytest.approx(expected, abs=1e-5)
    assert all(abs(m) > 1e-3 for m in margins)  # the random adapter does move the rewards


# -- the coverage / active mix ----------------------------------------------------------------------------------


def test_choose_keeps_the_coverage_slots_and_the_smallest_margins():
    margins = [0.9, -0.05, 0.5, 0.01, -0.3, None]
    assert choose(margins, 3, 1) == [(0, "coverage"), (1, "active"), (3, "active")]
    assert choose(margins, 3, 0) == [(1, "active"), (3, "active"), (4, "active")]
    assert choose([None, None, None], 2, 0) == [(0, "coverage"), (1, "coverage")]  # nothing scored: coverage fills
    mix = Mix(0.3)
    slots = [mix.coverage_slots(8) for _ in range(5)]
    assert sum(slots) == 12 and slots == [2, 2, 3, 2, 3]  # 0.3 of 40, exactly, no drift


def test_the_real_queue_serves_the_configured_share_and_records_why_in_duckdb(round_policy, store):
    queue = PairQueue(round_policy, store, SAMPLING, target=8, batch_size=8, seed=0)
    queue.set_selection(Selection("active", coverage_share=0.25, pool=2, scorer=Scorer("round-1", 1, 0.1)))
    queue.start()
    served = []
    try:
        for _ in range(16):
            r = queue.take(wait_s=300)
            served.append(store.add_pair(r.prompt, r.first, r.second, False, "demo", None, SAMPLING.to_dict(), "t",
                                         origin=r.origin))
    finally:
        queue.stop()
    origins = [store.pair_origin(p.id) for p in served]
    mix = store.selection_mix()
    assert mix.by_selection == {"coverage": 4, "active": 12}  # 0.25 of 16
    assert all(o.margin is not None and o.margin_round == 1 for o in origins)
    active = [abs(o.margin) for o in origins if o.selection == "active"]
    assert mix.mean_abs_margin["active"] == pytest.approx(sum(active) / len(active))
    assert mix.mean_abs_margin["active"] < mix.mean_abs_margin["coverage"]  # active kept the unsure pairs
