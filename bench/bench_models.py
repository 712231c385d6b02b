"""Models for the labelling benchmarks: the bundled demo model, and a model of SmolLM2-135M's shape.

The 135M-shape model has random weights (timing does not need trained ones; the machine is offline) and the demo
tokenizer: LlamaConfig(hidden 576, intermediate 1536, 30 layers, 9 heads, 3 kv heads, vocab 49152), tied
embeddings like SmolLM2. Random weights never say end-of-turn, so every reply runs to max_new_tokens: every
sequence of a comparison has the same length. Built once into a cache directory and reused.
"""

from __future__ import annotations

import logging
from pathlib import Path

from prefapp.config import DEMO_MODEL_DIR
from prefapp.models import ModelChoice, resolve_model

log = logging.getLogger(__name__)

SMOLLM_SHAPE = dict(hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
                    num_key_value_heads=3, vocab_size=49152, max_position_embeddings=8192, tie_word_embeddings=True)
CACHE_DIR = Path("/tmp/prefapp-bench-smollm2-135m-shape")


def smollm_shape_choice(cache_dir: Path = CACHE_DIR) -> ModelChoice:
    """The random-weight 135M-shape model (built on first use) as a ModelChoice for Policy."""
    if not (cache_dir / "model.safetensors").exists():
        import torch
        from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

        log.info("building a random-weight SmolLM2-135M-shape model in %s", cache_dir)
        tokenizer = AutoTokenizer.from_pretrained(DEMO_MODEL_DIR)
        config = LlamaConfig(**SMOLLM_SHAPE, bos_token_id=tokenizer.bos_token_id,
                             eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
        torch.manual_seed(0)
        model = LlamaForCausalLM(config)
        model.save_pretrained(cache_dir)
        tokenizer.save_pretrained(cache_dir)
    return ModelChoice(str(cache_dir), "smollm2-135m-shape (random weights)", "benchmark model of SmolLM2-135M's shape")


def bench_choice(name: str) -> ModelChoice:
    """'demo' or '135m'."""
    if name == "demo":
        return resolve_model("demo")
    if name == "135m":
        return smollm_shape_choice()
    raise SystemExit(f"unknown model {name!r}: use demo or 135m")
