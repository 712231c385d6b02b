"""Which model to load, and the loaded policy: a base model plus any number of named LoRA adapters.

`resolve_model` decides what `--model auto` means on this machine and records why, so the UI can say it.
`Policy` owns the weights; every forward pass goes through `Policy.using(adapter)`, which holds a lock so
that switching adapters in one thread never changes the model under another thread's generate call.
"""

from __future__ import annotations

import logging
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from prefapp.config import DEFAULT_HUB_MODEL, DEMO_MODEL_DIR, ConfigError

log = logging.getLogger(__name__)

HUB_FILES = ["*.json", "*.safetensors", "*.jinja", "tokenizer*", "*.txt", "*.model"]  # no .bin/.onnx/.gguf copies


@dataclass(frozen=True)
class ModelChoice:
    source: str  # what from_pretrained gets: a local directory or a Hub id
    label: str  # short name for the UI and the store's model_id column
    reason: str  # why this model, in words a user understands


def resolve_model(spec: str = "auto") -> ModelChoice:
    """Turn `--model` into a concrete model: `auto`, `demo`, a local path, or a Hub id."""
    spec = (spec or "auto").strip()
    if spec == "demo":
        return _demo_choice("--model demo was asked for")
    if spec == "auto":
        return _auto_choice()
    path = Path(spec).expanduser()
    if path.exists():
        if not (path / "config.json").exists():
            raise ConfigError(f"{path} has no config.json: point --model at a directory saved with save_pretrained")
        return ModelChoice(str(path.resolve()), path.name, f"local model directory {path}")
    return ModelChoice(spec, spec, f"Hugging Face Hub model {spec} (--model)")


def _auto_choice() -> ModelChoice:
    cached = _hub_snapshot(DEFAULT_HUB_MODEL, local_only=True)
    if cached:
        return ModelChoice(cached, DEFAULT_HUB_MODEL, f"{DEFAULT_HUB_MODEL} found in the local Hugging Face cache")
    downloaded = _hub_snapshot(DEFAULT_HUB_MODEL, local_only=False)
    if downloaded:
        return ModelChoice(downloaded, DEFAULT_HUB_MODEL, f"{DEFAULT_HUB_MODEL} downloaded from the Hugging Face Hub")
    return _demo_choice(
        f"{DEFAULT_HUB_MODEL} is not in the local Hugging Face cache and could not be downloaded (offline?)"
    )


def _demo_choice(why: str) -> ModelChoice:
    if not (DEMO_MODEL_DIR / "config.json").exists():
        raise ConfigError(f"the bundled demo model is missing from {DEMO_MODEL_DIR}: run `prefapp build-demo-model`")
    return ModelChoice(str(DEMO_MODEL_DIR), "prefapp-demo", f"bundled demo model ({why})")


def _hub_snapshot(repo_id: str, local_only: bool) -> str | None:
    from huggingface_hub import snapshot_download

    try:
        return snapshot_download(repo_id, allow_patterns=HUB_FILES, local_files_only=local_only, etag_timeout=5)
    except Exception as exc:  # offline, not cached, gated, DNS failure: all mean "not available here"
        log.info("%s not available (%s): %s", repo_id, "cache" if local_only else "download", type(exc).__name__)
        return None


def pick_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def inference_dtype(device: str) -> torch.dtype:
    """bf16 where the GPU supports it (half the memory, same range as fp32); fp32 on CPU."""
    if device == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32


def load_tokenizer(source: str) -> PreTrainedTokenizerBase:
    tokenizer = AutoTokenizer.from_pretrained(source)
    if not tokenizer.chat_template:
        raise ConfigError(f"{source} has no chat template: use an instruct/chat model (e.g. {DEFAULT_HUB_MODEL})")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token  # batched generation needs a pad id; eos is the usual stand-in
    tokenizer.padding_side = "left"  # decoder-only generation continues from the right edge
    return tokenizer


def load_base_model(source: str, device: str) -> PreTrainedModel:
    model = AutoModelForCausalLM.from_pretrained(source, dtype=inference_dtype(device))
    return model.to(device).eval()


class Policy:
    """A base model and its LoRA adapters; `using(None)` is the base, `using(name)` base + that adapter.

    The weights load on first use: with a remote generator (`--generator-url`) the app needs only the tokenizer
    and config (context checks, preflight), so the model is not loaded a second time next to the engine."""

    def __init__(self, choice: ModelChoice, device: str | None = None, lazy: bool = False) -> None:
        from transformers import AutoConfig

        self.choice = choice
        self.device = device or pick_device()
        self.tokenizer = load_tokenizer(choice.source)
        self.config = AutoConfig.from_pretrained(choice.source)
        self._model: PreTrainedModel | None = None
        self.adapters: dict[str, str] = {}  # adapter name -> directory it was loaded from
        self._lock = threading.RLock()
        if not lazy:
            self._model = load_base_model(choice.source, self.device)

    @property
    def model(self) -> PreTrainedModel:
        with self._lock:
            if self._model is None:
                log.info("loading the weights of %s", self.choice.label)
                self._model = load_base_model(self.choice.source, self.device)
            return self._model

    @model.setter
    def model(self, model: PreTrainedModel) -> None:
        self._model = model

    @property
    def loaded(self) -> bool:
        """True once the weights are in memory."""
        return self._model is not None

    @property
    def context_length(self) -> int:
        return int(getattr(self.config, "max_position_embeddings", 2048))

    def load_adapter(self, name: str, path: str | Path) -> None:
        """Load a PEFT LoRA adapter saved by training under `name` (no copy of the base weights)."""
        from peft import PeftModel

        path = Path(path)
        if not (path / "adapter_config.json").exists():
            raise ConfigError(f"{path} is not a PEFT adapter directory (no adapter_config.json): pick a finished round")
        with self._lock:
            if name in self.adapters:
                return
            if isinstance(self.model, PeftModel):
                self.model.load_adapter(str(path), adapter_name=name)
            else:
                self.model = PeftModel.from_pretrained(self.model, str(path), adapter_name=name)
            self.model.eval()
            self.adapters[name] = str(path)
        log.info("loaded adapter %s from %s", name, path)

    @contextmanager
    def using(self, adapter: str | None) -> Iterator[PreTrainedModel]:
        """Hold the model with `adapter` active (None: the base, adapters disabled) for one forward/generate."""
        with self._lock:
            if adapter is None:
                if not self.adapters:
                    yield self.model
                    return
                with self.model.disable_adapter():
                    yield self.model
                return
            if adapter not in self.adapters:
                raise ConfigError(f"adapter {adapter!r} is not loaded: pick one of {sorted(self.adapters) or 'none yet'}")
            self.model.set_adapter(adapter)
            yield self.model
