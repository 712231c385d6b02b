"""Adapters from anywhere: which base model a PEFT adapter directory belongs to, and whether it is ours.

An adapter records its base in adapter_config.json (`base_model_name_or_path`). Loaded from the Hugging Face cache,
that is an absolute path under `.../models--org--name/snapshots/<rev>` that means nothing on another machine, so
training rewrites it to the Hub id (`record_hub_base`). Two bases are the same model when their names agree (a Hub
id, a cache snapshot of it, the same directory), or, for two local directories, when their config.json are equal
and their weight files have the same sizes (a copy of the model, e.g. the bundled demo model in another checkout).
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

from prefapp.errors import ConfigError

log = logging.getLogger(__name__)

ADAPTER_CONFIG = "adapter_config.json"
ROUND_FILE = "prefapp_round.json"  # written next to the adapter by training: what was trained, how, and how it went
_SNAPSHOT = re.compile(r"models--([^/\\]+?)--([^/\\]+)[/\\]snapshots[/\\]")
WEIGHT_SUFFIXES = (".safetensors", ".bin")


def hub_id(source: str | Path) -> str | None:
    """'org/name' for a Hugging Face cache snapshot path (or a Hub id itself); None for any other local path."""
    text = str(source)
    match = _SNAPSHOT.search(text)
    if match:
        return f"{match.group(1)}/{match.group(2)}"
    if not Path(text).expanduser().exists() and re.fullmatch(r"[\w.-]+(/[\w.-]+)?", text):
        return text
    return None


def record_hub_base(adapter_dir: str | Path, base_source: str | Path) -> None:
    """Write the Hub id, not the cache path, as the adapter's base when the base came from the Hub."""
    config_path = Path(adapter_dir) / ADAPTER_CONFIG
    hub = hub_id(base_source)
    if hub is None or not config_path.is_file():
        return
    config = json.loads(config_path.read_text())
    if config.get("base_model_name_or_path") != hub:
        config["base_model_name_or_path"] = hub
        config_path.write_text(json.dumps(config, indent=2, sort_keys=True))


def adapter_base(adapter_dir: str | Path) -> str:
    """The base model an adapter directory names, or a ConfigError saying what the directory lacks."""
    path = Path(adapter_dir).expanduser()
    if not path.is_dir():
        raise ConfigError(f"{adapter_dir} is not a directory: give the folder a LoRA adapter was saved to "
                          "(it holds adapter_config.json)")
    if not (path / ADAPTER_CONFIG).is_file():
        raise ConfigError(f"{adapter_dir} holds no {ADAPTER_CONFIG}: give the folder a PEFT adapter was saved to "
                          "(save_pretrained of a PeftModel, or a prefapp round)")
    try:
        config = json.loads((path / ADAPTER_CONFIG).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path / ADAPTER_CONFIG} is not valid JSON ({exc}): re-save the adapter") from exc
    base = config.get("base_model_name_or_path")
    if not base:
        raise ConfigError(f"{path / ADAPTER_CONFIG} does not name its base model (base_model_name_or_path): "
                          "set it to the Hub id or directory of the model the adapter was trained on")
    if not any(path.glob("adapter_model.*")):
        raise ConfigError(f"{adapter_dir} has a config but no adapter weights (adapter_model.safetensors)")
    return str(base)


def same_model(a: str, b: str) -> bool:
    """Whether two model sources (Hub ids, cache snapshots or local directories) are the same base model."""
    if a == b or (hub_id(a) is not None and hub_id(a) == hub_id(b)):
        return True
    pa, pb = Path(a).expanduser(), Path(b).expanduser()
    if not (pa.is_dir() and pb.is_dir()):
        return False
    if pa.resolve() == pb.resolve():
        return True
    return _fingerprint(pa) == _fingerprint(pb) is not None


def _fingerprint(path: Path) -> tuple | None:
    if not (path / "config.json").is_file():
        return None
    config = json.loads((path / "config.json").read_text())
    config.pop("_name_or_path", None)
    weights = sorted((p.name, p.stat().st_size) for p in path.iterdir() if p.suffix in WEIGHT_SUFFIXES)
    return json.dumps(config, sort_keys=True), tuple(weights)


def check_adapter(adapter_dir: str | Path, model_source: str, model_label: str) -> str:
    """The adapter's recorded base when it is the model this app runs; a ConfigError naming both otherwise."""
    base = adapter_base(adapter_dir)
    if same_model(base, model_source) or base == model_label:
        return base
    raise ConfigError(f"the adapter in {adapter_dir} was trained on {base}, but this app runs {model_label} "
                      f"({model_source}): start the app with --model {base}, or pick an adapter trained on "
                      f"{model_label}")


def round_record(adapter_dir: str | Path) -> dict:
    """What prefapp training wrote beside an adapter (config, metrics, n_pairs, ...), or {} for a foreign adapter."""
    path = Path(adapter_dir) / ROUND_FILE
    try:
        return json.loads(path.read_text()) if path.is_file() else {}
    except (json.JSONDecodeError, UnicodeDecodeError):
        log.warning("%s is not valid JSON: the round is registered without its training record", path)
        return {}


def register_round(store, adapter_dir: str | Path, model_source: str, model_label: str, extra: dict | None = None):
    """Check an adapter directory belongs to this model and record it in `store` as a finished round (`extra`:
    more provenance)."""
    path = Path(adapter_dir).expanduser().resolve()
    base = check_adapter(path, model_source, model_label)
    record = round_record(path)
    metrics = {**(record.get("metrics") or {}), **{k: record[k] for k in ("steps", "seconds", "precision")
                                                     if k in record}}
    provenance = {"registered_from": str(path), "adapter_base": base, "trained_by": "prefapp" if record else
                  "elsewhere", **(extra or {})}
    return store.add_finished_round(model_source, str(path), record.get("config") or {}, metrics, provenance,
                                    int(record.get("n_pairs") or 0))
