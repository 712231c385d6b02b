import pytest

from prefapp.labeling import generation
from prefapp.config import ConfigError, SamplingConfig
from prefapp.demo.task import judge, sample_tasks

SAMPLING = SamplingConfig(temperature=1.0, top_p=0.95, max_new_tokens=48)


def test_pair_comes_from_one_batched_generate_call(demo_policy, monkeypatch):
    calls = []
    real_generate = demo_policy.model.generate

    def counting_generate(*args, **kwargs):
        calls.append(kwargs.get("num_return_sequences"))
        return real_generate(*args, **kwargs)

    monkeypatch.setattr(demo_policy.model, "generate", counting_generate)
    first, second = generation.generate_pair(demo_policy, "What is 3 + 4?", SAMPLING)
    assert calls == [2]
    assert first and second


def test_demo_answers_are_in_the_task_format(demo_policy):
    tasks = sample_tasks(24, seed=3, split="heldout")
    replies = generation.sample(demo_policy, [t.question for t in tasks], SAMPLING, num_samples=2, seed=0)
    judgements = [judge(t.question, r) for t, pair in zip(tasks, replies) for r in pair]
    well_formed = sum(j.well_formed for j in judgements) / len(judgements)
    correct = sum(bool(j.correct) for j in judgements) / len(judgements)
    assert well_formed >= 0.8
    assert 0.3 <= correct < 1.0  # right often, not always: there is something to prefer


def test_samples_differ_and_seed_reproduces(demo_policy):
    prompts = ["What is the capital of France?"] * 8
    a = generation.sample(demo_policy, prompts, SAMPLING, seed=1)
    b = generation.sample(demo_policy, prompts, SAMPLING, seed=1)
    assert a == b
    assert len({r[0] for r in a}) > 1


def test_multi_turn_prompts_and_bad_prompts(demo_policy):
    conversation = [
        {"role": "user", "content": "What is 2 + 2?"},
        {"role": "assistant", "content": "2 + 2 = 4."},
        {"role": "user", "content": "What is 5 * 3?"},
    ]
    assert generation.reply(demo_policy, conversation, SAMPLING)
    with pytest.raises(ConfigError, match="prompt is empty"):
        generation.generate_pair(demo_policy, "   ", SAMPLING)
    with pytest.raises(ConfigError, match="last message"):
        generation.generate_pair(demo_policy, conversation[:2], SAMPLING)
    huge = "What is 2 + 2? " * 2000
    with pytest.raises(ConfigError, match="shorten the prompt or lower max_new_tokens"):
        generation.generate_pair(demo_policy, huge, SAMPLING)
