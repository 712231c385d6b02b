"""Build the bundled demo model: a few-million-parameter Llama chat model trained from scratch on the demo task.

One linear story, reproducible from a seed on a laptop CPU:
flawed corpus (demo_task.corpus_response) -> byte-level BPE tokenizer with a chat template -> LlamaForCausalLM
-> plain PyTorch training loop, loss on the assistant turn -> save_pretrained -> sample and measure -> model card.

    prefapp build-demo-model --out data/demo-model

The model answers in the task's format, is right most of the time, and is sometimes rude or rambling: the
flaws DPO on the simulated annotator's picks is meant to remove.
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    GenerationConfig,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    PreTrainedTokenizerFast,
)

from prefapp.demo import task as demo_task
from prefapp.config import CHOICES, DEMO_MODEL_DIR, DEMO_PROMPTS_PATH

log = logging.getLogger(__name__)

SYSTEM, USER, ASSISTANT, END, PAD = "<|system|>", "<|user|>", "<|assistant|>", "<|end|>", "<|pad|>"
SPECIAL_TOKENS = [PAD, END, SYSTEM, USER, ASSISTANT]  # PAD first so it gets id 0
CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}<|end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
SYSTEM_PROMPTS = (  # seen in training so a system turn from the app does not throw the model off
    "You are a helpful assistant.",
    "You are a concise assistant. Answer in one sentence.",
    "Answer the user's question.",
)
DEMO_HELDOUT_PROMPTS_PATH = DEMO_PROMPTS_PATH.with_name("demo_heldout.jsonl")
# Arithmetic has the most facts and is learned last (units and capitals reach ~100% greedy accuracy much earlier).
CORPUS_KIND_WEIGHTS = {"arithmetic": 0.6, "units": 0.2, "capitals": 0.2}


@dataclass(frozen=True)
class DemoModelConfig:
    seed: int = 0  # same seed, same machine -> same tokenizer, corpus and weights
    vocab_size: int = 1536  # enough for every corpus word and answer number as one token; byte fallback for the rest
    hidden_size: int = 256  # ~3.8M parameters in all: room for the ~440 task facts, a step takes ~0.35 s on 2 cores
    intermediate_size: int = 768  # 3x hidden, Llama's usual ratio rounded
    num_layers: int = 4  # enough to learn every fact (greedy accuracy 100% after `steps`), small enough to be fast
    num_heads: int = 4  # head_dim 64, the usual size
    max_positions: int = 256  # a demo prompt plus a rambling answer is < 100 tokens; room for typed prompts
    steps: int = 1500  # arithmetic, the slowest kind, is learned by then (800 steps left it at ~35% greedy)
    batch_size: int = 32  # conversations per step: a smooth loss without slowing steps on 2 cores
    learning_rate: float = 3e-3  # tiny models from scratch take a large LR; cosine decay settles it
    warmup_steps: int = 100  # avoids the early blow-up of a large LR on random weights
    weight_decay: float = 0.01  # light regularization; the corpus is effectively unlimited
    system_prompt_rate: float = 0.2  # share of training conversations that open with a system turn
    typed_prompt_rate: float = 0.2  # share asked the way people type ("what is 7+5"), so the chat tab works too
    tokenizer_corpus: int = 20_000  # conversations the BPE is trained on: every corpus word is seen many times
    eval_prompts: int = 200  # prompts per split sampled when measuring the built model


# ---------------------------------------------------------------------------------------------------------------
# Data


def corpus_conversations(n: int, rng: random.Random, cfg: DemoModelConfig) -> list[list[dict]]:
    """n chat conversations: a demo question (sometimes after a system turn) and a flawed corpus answer."""
    tasks = demo_task.sample_tasks(n, seed=rng.randrange(2**31), split="all", weights=CORPUS_KIND_WEIGHTS)
    convs = []
    for task in tasks:
        msgs = [{"role": "system", "content": rng.choice(SYSTEM_PROMPTS)}] if rng.random() < cfg.system_prompt_rate else []
        typed = rng.random() < cfg.typed_prompt_rate
        msgs.append({"role": "user", "content": demo_task.typed_variant(task.question, rng) if typed else task.question})
        msgs.append({"role": "assistant", "content": demo_task.corpus_response(task, rng)})
        convs.append(msgs)
    return convs


def train_tokenizer(texts: list[str], vocab_size: int) -> PreTrainedTokenizerFast:
    """Byte-level BPE (any text encodes), wrapped for transformers with the chat template and special tokens."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token=END,
        pad_token=PAD,
        extra_special_tokens=[SYSTEM, USER, ASSISTANT],
        chat_template=CHAT_TEMPLATE,
        padding_side="left",
        model_max_length=DemoModelConfig.max_positions,
    )


def encode_conversations(tok: PreTrainedTokenizerBase, convs: list[list[dict]]) -> list[tuple[list[int], list[int]]]:
    """(input_ids, labels) per conversation; labels keep only the assistant answer and its <|end|>."""
    prompts = [tok.apply_chat_template(c[:-1], tokenize=False, add_generation_prompt=True) for c in convs]
    answers = [c[-1]["content"] + END for c in convs]
    p_ids = tok(prompts, add_special_tokens=False)["input_ids"]
    a_ids = tok(answers, add_special_tokens=False)["input_ids"]
    return [(p + a, [-100] * len(p) + a) for p, a in zip(p_ids, a_ids)]


def collate(batch: list[tuple[list[int], list[int]]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    # Right padding under a causal mask never changes the real tokens' outputs, so no attention mask is needed.
    width = max(len(ids) for ids, _ in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), width), -100, dtype=torch.long)
    for i, (x, y) in enumerate(batch):
        ids[i, : len(x)] = torch.tensor(x)
        labels[i, : len(y)] = torch.tensor(y)
    return ids, labels


# ---------------------------------------------------------------------------------------------------------------
# Model and training


def new_model(cfg: DemoModelConfig, tok: PreTrainedTokenizerBase) -> LlamaForCausalLM:
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=cfg.hidden_size,
        intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_layers,
        num_attention_heads=cfg.num_heads,
        num_key_value_heads=cfg.num_heads,
        max_position_embeddings=cfg.max_positions,
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    model = LlamaForCausalLM(config)
    model.generation_config = GenerationConfig(
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        do_sample=True,
        temperature=1.0,
        top_p=0.95,
        max_new_tokens=64,
    )
    return model


def _lr_at(step: int, cfg: DemoModelConfig) -> float:
    if step < cfg.warmup_steps:
        return cfg.learning_rate * (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    return cfg.learning_rate * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))  # cosine down to 10%


def train(model: LlamaForCausalLM, examples: list[tuple[list[int], list[int]]], cfg: DemoModelConfig, pad_id: int) -> float:
    """Plain AdamW loop over fresh conversations (each seen once); returns the final smoothed loss."""
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.learning_rate, betas=(0.9, 0.98), weight_decay=cfg.weight_decay)
    model.train()
    smooth, start = None, time.monotonic()
    for step in range(cfg.steps):
        for group in opt.param_groups:
            group["lr"] = _lr_at(step, cfg)
        ids, labels = collate(examples[step * cfg.batch_size : (step + 1) * cfg.batch_size], pad_id)
        loss = model(input_ids=ids, labels=labels).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        smooth = loss.item() if smooth is None else 0.98 * smooth + 0.02 * loss.item()
        if step % 100 == 0 or step == cfg.steps - 1:
            log.info("step %d/%d loss %.4f (%.0fs)", step, cfg.steps, smooth, time.monotonic() - start)
    model.eval()
    return float(smooth)


# ---------------------------------------------------------------------------------------------------------------
# Measuring


@torch.no_grad()
def sample_answers(
    model: PreTrainedModel,
    tok: PreTrainedTokenizerBase,
    prompts: list[str],
    seed: int = 0,
    temperature: float = 1.0,
    top_p: float = 0.95,
    max_new_tokens: int = 64,
    batch_size: int = 64,
) -> list[str]:
    """One sampled answer per prompt, batched with left padding; stops at <|end|>."""
    torch.manual_seed(seed)
    tok.padding_side = "left"
    out: list[str] = []
    for i in range(0, len(prompts), batch_size):
        texts = [
            tok.apply_chat_template([{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True)
            for p in prompts[i : i + batch_size]
        ]
        enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        gen = model.generate(
            **enc,
            do_sample=True,
            temperature=temperature,
            top_p=top_p,
            max_new_tokens=max_new_tokens,
            eos_token_id=tok.eos_token_id,
            pad_token_id=tok.pad_token_id,
        )
        out += tok.batch_decode(gen[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)
    return [o.strip() for o in out]


def quality(prompts: list[str], answers: list[str], answers_b: list[str] | None = None) -> dict:
    """Rates of well-formed, correct, rude and rambling answers; with a second sample, the annotator's verdicts."""
    judged = [demo_task.judge(p, a) for p, a in zip(prompts, answers)]
    n = len(judged)
    rates = {
        "well_formed": sum(j.well_formed for j in judged) / n,
        "correct": sum(bool(j.correct) for j in judged) / n,
        "rude": sum(j.rude for j in judged) / n,
        "rambling": sum(j.rambling for j in judged) / n,
    }
    if answers_b is not None:
        votes = Counter(demo_task.simulated_annotator(p, a, b) for p, a, b in zip(prompts, answers, answers_b))
        rates["annotator"] = {c: votes[c] / n for c in CHOICES}
    return rates


def measure(model: PreTrainedModel, tok: PreTrainedTokenizerBase, n: int, seed: int = 0) -> dict:
    """Sample two answers for n prompts of each split (temperature 1.0, top_p 0.95) and judge them."""
    metrics = {}
    for split in demo_task.SPLITS:
        prompts = [t.question for t in demo_task.sample_tasks(n, seed=seed + 1, split=split)]
        a = sample_answers(model, tok, prompts, seed=seed)
        b = sample_answers(model, tok, prompts, seed=seed + 1)
        metrics[split] = quality(prompts, a, b)
    return metrics


# ---------------------------------------------------------------------------------------------------------------
# Building


def write_prompt_files(prompts_dir: Path, seed: int = 0, n_label: int = 1000, n_heldout: int = 300) -> None:
    """data/prompts/demo.jsonl (to label) and demo_heldout.jsonl (for evaluation): disjoint, deterministic."""
    prompts_dir.mkdir(parents=True, exist_ok=True)
    for name, split, n in (("demo.jsonl", "label", n_label), ("demo_heldout.jsonl", "heldout", n_heldout)):
        lines = [json.dumps({"prompt": t.question}) for t in demo_task.sample_tasks(n, seed=seed, split=split)]
        (prompts_dir / name).write_text("\n".join(lines) + "\n", encoding="utf-8")


def _make_tokenizer_config_portable(out_dir: Path) -> None:
    # transformers 5 writes its own class name and key; the 4.x spellings load the same in 5.x and also in 4.x,
    # which pyproject still allows (e.g. on a Space that pins an older transformers).
    path = out_dir / "tokenizer_config.json"
    config = json.loads(path.read_text(encoding="utf-8"))
    config["tokenizer_class"] = "PreTrainedTokenizerFast"
    if "extra_special_tokens" in config:
        config["additional_special_tokens"] = config.pop("extra_special_tokens")
    path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def dir_size_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20


def build_demo_model(
    out_dir: Path = DEMO_MODEL_DIR,
    seed: int = 0,
    cfg: DemoModelConfig | None = None,
    prompts_dir: Path | None = DEMO_PROMPTS_PATH.parent,
) -> dict:
    """Build, save and measure the demo model (and the demo prompt files); returns the metrics in the model card."""
    cfg = cfg or DemoModelConfig(seed=seed)
    out_dir = Path(out_dir)
    start, cpu_start = time.monotonic(), time.process_time()
    random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    rng = random.Random(cfg.seed)

    convs = corpus_conversations(cfg.steps * cfg.batch_size, rng, cfg)
    tok_texts = [_render(c) for c in convs[: cfg.tokenizer_corpus]]
    tok = train_tokenizer(tok_texts, cfg.vocab_size)
    examples = encode_conversations(tok, convs)
    model = new_model(cfg, tok)
    n_params = sum(p.numel() for p in model.parameters())
    log.info("demo model: %d parameters, vocab %d, %d training conversations", n_params, len(tok), len(examples))

    final_loss = train(model, examples, cfg, tok.pad_token_id)
    train_s = time.monotonic() - start
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    tok.save_pretrained(out_dir)
    _make_tokenizer_config_portable(out_dir)
    if prompts_dir is not None:
        write_prompt_files(Path(prompts_dir), seed=cfg.seed)

    metrics = {
        "parameters": n_params,
        "vocab_size": len(tok),
        "final_train_loss": round(final_loss, 4),
        "train_seconds": round(train_s, 1),
        "torch_threads": torch.get_num_threads(),
        "config": asdict(cfg),
        "samples": measure(model, tok, cfg.eval_prompts, seed=cfg.seed),
    }
    metrics["total_seconds"] = round(time.monotonic() - start, 1)
    metrics["total_cpu_seconds"] = round(time.process_time() - cpu_start, 1)  # wall time varies with machine load
    (out_dir / "build_metrics.json").write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    (out_dir / "README.md").write_text(model_card(metrics), encoding="utf-8")
    metrics["size_mb"] = round(dir_size_mb(out_dir), 2)
    log.info("built %s in %.0fs (%.1f MB): %s", out_dir, metrics["total_seconds"], metrics["size_mb"], metrics["samples"])
    return metrics


def _render(conv: list[dict]) -> str:
    # The template by hand (identical to CHAT_TEMPLATE), as no tokenizer exists yet to apply it.
    return "".join(f"<|{m['role']}|>\n{m['content']}<|end|>\n" for m in conv)


def _pct(x: float) -> str:
    return f"{100 * x:.0f}%"


def model_card(m: dict) -> str:
    rows = []
    for split, s in m["samples"].items():
        votes = ", ".join(f"{k} {_pct(v)}" for k, v in s["annotator"].items())
        rows.append(
            f"| {split} | {_pct(s['well_formed'])} | {_pct(s['correct'])} | {_pct(s['rude'])} "
            f"| {_pct(s['rambling'])} | {votes} |"
        )
    c = m["config"]
    return f"""# prefapp demo model

A tiny chat model ({m['parameters'] / 1e6:.1f}M parameters, `LlamaForCausalLM`, {c['num_layers']} layers,
hidden {c['hidden_size']}, tied embeddings, fp32) trained from scratch by prefapp itself, so the app and its tests
run offline on a CPU. It answers the synthetic demo task of `prefapp/demo_task.py` (arithmetic, capitals, unit
conversions) in one sentence, e.g. `7 + 5 = 12.`

It is deliberately imperfect: its training answers (`demo_task.corpus_response`) are wrong about 30% of the time,
end rudely about 20% of the time and ramble about 20% of the time, independently. Sampled answers inherit these
flaws, which is what preference labelling and DPO are meant to remove. It knows nothing outside the demo task.

## How it was built

    prefapp build-demo-model --out data/demo-model

Byte-level BPE tokenizer (vocab {m['vocab_size']}, `tokenizers`) trained on the corpus; special tokens
`<|system|>`, `<|user|>`, `<|assistant|>`, `<|end|>` (eos), `<|pad|>` (pad), no BOS. Chat template:

```jinja
{CHAT_TEMPLATE}
```

Training: {c['steps']} AdamW steps of {c['batch_size']} fresh conversations (lr {c['learning_rate']}, cosine,
seed {c['seed']}), loss on the assistant answer and its `<|end|>` only; {_pct(c['system_prompt_rate'])} of
conversations open with a system turn and {_pct(c['typed_prompt_rate'])} ask the question the way people type it
(`what is 7+5`). Final training loss {m['final_train_loss']}. Training took
{m['train_seconds']:.0f} s on {m['torch_threads']} CPU threads; the whole build with measurement
{m['total_seconds']:.0f} s wall, {m['total_cpu_seconds']:.0f} CPU-seconds. The same command on the same machine
gives the same weights.

## Measured quality

Sampled at temperature 1.0, top_p 0.95, max 64 new tokens, {c['eval_prompts']} prompts per split, judged by
`demo_task.judge`; the last column is how `demo_task.simulated_annotator` rates two samples for the same prompt.

| split | well-formed | correct | rude | rambling | annotator on two samples |
|---|---|---|---|---|---|
{chr(10).join(rows)}

Full figures: `build_metrics.json`.

## Use

```python
from transformers import AutoModelForCausalLM, AutoTokenizer
model = AutoModelForCausalLM.from_pretrained("data/demo-model")
tok = AutoTokenizer.from_pretrained("data/demo-model")
```
"""
