"""Sampling from the policy: pairs for labelling, single replies for chat, batches for evaluation.

Every entry point ends in one batched `model.generate` call: n prompts x k samples are one batch, so the
two candidates of a pair come from the same call, and an evaluation sweep uses the CPU's cores fully.
"""

from __future__ import annotations

import logging
import threading
from typing import Iterator, Sequence

import torch

from prefapp.config import ConfigError, SamplingConfig
from prefapp.models import Policy

log = logging.getLogger(__name__)

Messages = list[dict]  # [{"role": "user", "content": "..."}], the chat-template format


def prompt_text(messages: Messages) -> str:
    """A single user turn reads as itself; a conversation as 'role: content' blocks."""
    if len(messages) == 1:
        return messages[0]["content"]
    return "\n\n".join(f"{m['role']}: {m['content']}" for m in messages)


def as_messages(prompt: str | Messages) -> Messages:
    """A plain string is one user turn; a message list is validated and returned as is."""
    if isinstance(prompt, str):
        if not prompt.strip():
            raise ConfigError("the prompt is empty: type a question or pick one from the prompt set")
        return [{"role": "user", "content": prompt}]
    if not prompt or not all(isinstance(m, dict) and {"role", "content"} <= m.keys() for m in prompt):
        raise ConfigError('a prompt must be a string or a list of {"role": ..., "content": ...} messages')
    if prompt[-1]["role"] != "user":
        raise ConfigError("the last message of a prompt must be the user's turn")
    return [{"role": m["role"], "content": m["content"]} for m in prompt]


def render_prompts(policy: Policy, prompts: Sequence[str | Messages], sampling: SamplingConfig) -> list[str]:
    """Apply the chat template, refusing prompts that leave no room for the answer in the context."""
    texts = []
    for prompt in prompts:
        text = policy.tokenizer.apply_chat_template(as_messages(prompt), tokenize=False, add_generation_prompt=True)
        n_tokens = len(policy.tokenizer(text, add_special_tokens=False)["input_ids"])
        room = policy.context_length - sampling.max_new_tokens
        if n_tokens > room:
            raise ConfigError(
                f"the prompt is {n_tokens} tokens but the model's context is {policy.context_length} and "
                f"{sampling.max_new_tokens} are reserved for the answer: shorten the prompt or lower max_new_tokens"
            )
        texts.append(text)
    return texts


def sample(
    policy: Policy,
    prompts: Sequence[str | Messages],
    sampling: SamplingConfig,
    num_samples: int = 1,
    adapter: str | None = None,
    seed: int | None = None,
) -> list[list[str]]:
    """`num_samples` sampled replies for each prompt, all from one `generate` call: result[i][j]."""
    sampling.validate()
    if not prompts:
        return []
    texts = render_prompts(policy, prompts, sampling)
    tok = policy.tokenizer
    batch = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(policy.device)
    if seed is not None:
        torch.manual_seed(seed)
    with policy.using(adapter) as model, torch.inference_mode():
        out = model.generate(
            **batch,
            do_sample=True,
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            max_new_tokens=sampling.max_new_tokens,
            num_return_sequences=num_samples,
            pad_token_id=tok.pad_token_id,
        )
    replies = tok.batch_decode(out[:, batch["input_ids"].shape[1] :], skip_special_tokens=True)
    replies = [r.strip() for r in replies]
    return [replies[i * num_samples : (i + 1) * num_samples] for i in range(len(prompts))]


def generate_pair(
    policy: Policy, prompt: str | Messages, sampling: SamplingConfig, adapter: str | None = None
) -> tuple[str, str]:
    """Two candidate responses for one prompt, from a single batched `generate` call."""
    first, second = sample(policy, [prompt], sampling, num_samples=2, adapter=adapter)[0]
    return first, second


def reply(policy: Policy, messages: Messages, sampling: SamplingConfig, adapter: str | None = None) -> str:
    """One chat reply to a conversation."""
    return sample(policy, [messages], sampling, num_samples=1, adapter=adapter)[0][0]


def stream_reply(
    policy: Policy, messages: Messages, sampling: SamplingConfig, adapter: str | None = None
) -> Iterator[str]:
    """One chat reply to a conversation, yielded as it grows (the text so far, stripped), token by token.

    `generate` runs in a worker thread holding the policy's lock, as `reply` does; a consumer that stops early
    (a closed browser tab) stops the generation at the next token instead of letting it run to max_new_tokens."""
    from transformers import StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer

    sampling.validate()
    text = render_prompts(policy, [messages], sampling)[0]
    tok = policy.tokenizer
    batch = tok([text], return_tensors="pt", add_special_tokens=False).to(policy.device)
    streamer = TextIteratorStreamer(tok, skip_prompt=True, skip_special_tokens=True, timeout=600)
    stop = threading.Event()
    failure: list[BaseException] = []

    class Stopped(StoppingCriteria):
        def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs: object) -> bool:
            return stop.is_set()

    def run() -> None:
        try:
            with policy.using(adapter) as model, torch.inference_mode():
                model.generate(**batch, do_sample=True, temperature=sampling.temperature, top_p=sampling.top_p,
                               max_new_tokens=sampling.max_new_tokens, pad_token_id=tok.pad_token_id,
                               streamer=streamer, stopping_criteria=StoppingCriteriaList([Stopped()]))
        except BaseException as exc:  # re-raised in the consumer's thread
            failure.append(exc)
            streamer.end()

    worker = threading.Thread(target=run, name="stream-reply", daemon=True)
    worker.start()
    so_far = ""
    try:
        for piece in streamer:
            so_far += piece
            if so_far.strip():  # nothing to show before the first visible character
                yield so_far.strip()
    finally:
        stop.set()
        worker.join()
    if failure:
        raise failure[0]
