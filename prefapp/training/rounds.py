"""What a finished round can become: a fingerprinted record, a merged full model, a Hub repo with a model card.

The store keeps the round's row; this module works on its files (the PEFT adapter directory training wrote) and
never touches SQL. Merging loads a fresh copy of the base model so the app's live policy is never modified.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from datasets import Dataset

from prefapp.config import ConfigError

log = logging.getLogger(__name__)

HASHED_COLUMNS = ("prompt", "chosen", "rejected")  # the training signal; provenance columns do not change a round
KTO_HASHED_COLUMNS = ("prompt", "completion", "label")  # the same for a KTO round (prefapp.training.kto)


def round_adapter_name(round_id: int) -> str:
    """The one naming rule for a round: its adapter, exports and output dirs are called `round-N`."""
    return f"round-{int(round_id)}"


def round_number(name: str) -> int | None:
    """N from `round-N` (or a bare N); None for a name that is not a round's."""
    text = (name or "").strip().removeprefix("round-")
    return int(text) if text.isdigit() else None


def dataset_sha256(dataset: Dataset) -> str:
    """A fingerprint of exactly what DPO (or KTO) trains on: the prompt/chosen/rejected (prompt/completion/label)
    rows in order."""
    digest = hashlib.sha256()
    columns = HASHED_COLUMNS if "chosen" in dataset.column_names else KTO_HASHED_COLUMNS
    for row in dataset.select_columns(list(columns)):
        digest.update(json.dumps(row, sort_keys=True, ensure_ascii=False).encode())
        digest.update(b"\n")
    return digest.hexdigest()


def _check_adapter(adapter_dir: str | Path | None) -> Path:
    path = Path(adapter_dir or "")
    if not adapter_dir or not (path / "adapter_config.json").is_file():
        raise ConfigError(f"{adapter_dir} holds no adapter (no adapter_config.json): pick a finished round")
    return path


def merge_adapter(base_source: str, adapter_dir: str | Path, out_dir: str | Path) -> Path:
    """Fold a LoRA adapter into a fresh copy of the base weights and save a standalone model + tokenizer."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    adapter_dir, out_dir = _check_adapter(adapter_dir), Path(out_dir)
    if (out_dir / "config.json").exists():
        raise ConfigError(f"{out_dir} already holds a model: choose another directory or remove it")
    base = AutoModelForCausalLM.from_pretrained(base_source, dtype=torch.float32)  # merge in full precision
    merged = PeftModel.from_pretrained(base, str(adapter_dir)).merge_and_unload()
    out_dir.mkdir(parents=True, exist_ok=True)
    merged.save_pretrained(str(out_dir))
    AutoTokenizer.from_pretrained(str(adapter_dir)).save_pretrained(str(out_dir))
    log.info("merged %s into %s -> %s", adapter_dir, base_source, out_dir)
    return out_dir


def model_card(round_id: int, base_model: str, config: dict, metrics: dict | None, provenance: dict | None,
               evaluation: str | None = None) -> str:
    """A Hub model card: what the adapter is, what it was trained on, with what, how it ended, and (`evaluation`,
    from prefapp.evaluation.gate) its blind verdict and automatic checks on held-out prompts."""
    provenance, metrics = provenance or {}, metrics or {}
    counts = provenance.get("counts", {})
    keys = ("loss", "rewards/margins", "rewards/accuracies", "steps", "seconds")
    shown = "\n".join(f"| {k} | {metrics[k]:.4g} |" for k in keys if isinstance(metrics.get(k), (int, float)))
    return f"""---
base_model: {base_model}
library_name: peft
tags: [dpo, trl, lora, prefapp]
---

# prefapp round {round_id}: DPO LoRA adapter for `{base_model}`

Trained with [TRL](https://github.com/huggingface/trl)'s `DPOTrainer` + PEFT LoRA on preference pairs labelled in
prefapp. Load it with `PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained("{base_model}"), <this repo>)`.

## Data

- pairs: {counts.get("pairs", "?")} (ties dropped: {counts.get("ties", "?")}, \
both bad dropped: {counts.get("both_bad", "?")})
- dataset sha256 (prompt/chosen/rejected rows): `{provenance.get("dataset_sha256", "unknown")}`

## Training configuration

```json
{json.dumps(config, indent=2, sort_keys=True)}
```

## Final metrics

| metric | value |
|---|---|
{shown}
""" + (f"""
## Evaluation on held-out prompts

{evaluation}
""" if evaluation else "")


def push_adapter(adapter_dir: str | Path, repo_id: str, card: str, token: str | None = None,
                 private: bool = True) -> str:
    """Upload the adapter folder with its model card to a Hub model repo; offline or unauthorized says so."""
    from huggingface_hub import HfApi
    from huggingface_hub.constants import is_offline_mode

    adapter_dir = _check_adapter(adapter_dir)
    if not repo_id or "/" not in repo_id:
        raise ConfigError(f"repo id {repo_id!r} is not of the form owner/name: e.g. alice/prefapp-round-1")
    if is_offline_mode():
        raise ConfigError("cannot push: the Hub is switched off here (HF_HUB_OFFLINE=1); unset it on a machine with "
                          "internet, or copy the adapter directory " + str(adapter_dir))
    (adapter_dir / "README.md").write_text(card)
    api = HfApi(token=token)
    try:
        api.create_repo(repo_id, private=private, exist_ok=True)
        api.upload_folder(folder_path=str(adapter_dir), repo_id=repo_id, ignore_patterns=["checkpoints/*"],
                          commit_message="prefapp: DPO LoRA adapter")
    except Exception as exc:  # offline, DNS, bad token, no write access: all need the user to act
        raise ConfigError(f"push to {repo_id} failed ({type(exc).__name__}: {exc}): check the network and that "
                          "HF_TOKEN has write access; the adapter is still saved at " + str(adapter_dir)) from exc
    return f"https://huggingface.co/{repo_id}"

