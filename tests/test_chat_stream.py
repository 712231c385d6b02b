"""Streaming chat replies: the same text as the one-shot reply, growing token by token, and a stopped stream
frees the model."""

from __future__ import annotations

import torch

from prefapp.config import SamplingConfig
from prefapp.labeling import generation
from prefapp.models import Policy
from prefapp.service import PrefService

SAMPLING = SamplingConfig(temperature=0.9, top_p=0.95, max_new_tokens=24)
MESSAGES = [{"role": "user", "content": "What is 2 plus 3?"}]


def test_stream_reply_grows_to_the_same_reply_as_one_generate_call(demo_policy: Policy) -> None:
    torch.manual_seed(7)
    whole = generation.reply(demo_policy, MESSAGES, SAMPLING)
    torch.manual_seed(7)
    steps = list(generation.stream_reply(demo_policy, MESSAGES, SAMPLING))
    assert steps and steps[-1] == whole  # same sampling, same random stream: the same text
    assert len(steps) > 1 and all(b.startswith(a) for a, b in zip(steps, steps[1:]))


def test_a_stream_stopped_early_releases_the_model(demo_policy: Policy) -> None:
    stream = generation.stream_reply(demo_policy, MESSAGES, SamplingConfig(max_new_tokens=200))
    next(stream)
    stream.close()  # a closed browser tab: the worker stops at the next token and lets go of the lock
    assert demo_policy._lock.acquire(timeout=30)
    demo_policy._lock.release()


def test_chat_stream_yields_at_once_then_the_base_reply(service: PrefService) -> None:
    stream = service.chat_stream([], [], "What is 2 plus 3?")
    assert next(stream) == ("", None)  # before the model runs: no round trained, so no aligned side
    items = list(stream)
    assert items and all(aligned is None for _, aligned in items) and items[-1][0]
    assert all(b.startswith(a) for (a, _), (b, _) in zip(items, items[1:]))
