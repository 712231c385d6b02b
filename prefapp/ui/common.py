"""What every tab shares: turning a domain error into a message, and text for humans built from service results."""

import html
from contextlib import contextmanager
from typing import Any, Iterator

import gradio as gr
import pandas as pd

from prefapp.service import ModelInfo, round_adapter_name
from prefapp.store import Round

Update = dict[Any, Any]  # {component: new value}: gradio applies only the components named
PRIVATE = dict(api_visibility="private")  # UI events; the API is the named functions of prefapp.ui.api


def capitalized(message: str) -> str:
    return message[:1].upper() + message[1:]


def round_name(which: str | None) -> str | None:
    """'base'/'' -> None, '3' -> 'round-3', 'round-3' stays."""
    which = (which or "").strip()
    if which in ("", "base"):
        return None
    return round_adapter_name(int(which)) if which.isdigit() else which


def round_choices(service: Any) -> list[str]:
    """The finished rounds' adapters, in order, for a dropdown."""
    names = list(service.policy.adapters)  # copy: training may add one from its thread
    return sorted(names, key=lambda n: (len(n), n))


def aligned_dropdown(service: Any) -> gr.Dropdown:
    return gr.Dropdown(choices=round_choices(service), value=service.aligned)


@contextmanager
def user_errors() -> Iterator[None]:
    """A domain error is the user's to fix: show its message instead of gradio's generic 'Error'."""
    try:
        yield
    except ValueError as exc:  # ConfigError is a ValueError; so are the store's input checks
        raise gr.Error(toast_text(exc), print_exception=False) from exc


def toast_text(message: object) -> str:
    """gradio renders toast messages as HTML; ours may quote user input (a name, a path), so escape them."""
    return html.escape(str(message), quote=False)


def model_text(info: ModelInfo) -> str:
    aligned = info.aligned or "none yet (train a round in the Train tab)"
    return (f"{info.label} on {info.device} - {info.reason}. New pairs come from: {info.generator}. "
            f"Chat compares the base with: {aligned}.")


def rounds_frame(rounds: list[Round]) -> pd.DataFrame:
    def num(metrics: dict | None, key: str) -> str:
        value = (metrics or {}).get(key)
        return f"{value:.3f}" if isinstance(value, (int, float)) else ""

    rows = [
        {
            "round": r.id, "status": r.status, "pairs": r.n_pairs, "loss": num(r.metrics, "loss"),
            "margin": num(r.metrics, "rewards/margins"), "accuracy": num(r.metrics, "rewards/accuracies"),
            "seconds": num(r.metrics, "seconds"), "started (UTC)": r.started_at.strftime("%Y-%m-%d %H:%M"),
            "error": r.error or "", "adapter": r.adapter_path or "",
            "dataset sha256": (r.provenance or {}).get("dataset_sha256", "")[:12],
            "ties/both bad dropped": "{ties}/{both_bad}".format(**(r.provenance or {}).get("counts", {})) if
            (r.provenance or {}).get("counts") else "",
            "resumes": (r.provenance or {}).get("resumes", 0), "base model": r.base_model,
        }
        for r in sorted(rounds, key=lambda r: -r.id)
    ]
    columns = ["round", "status", "pairs", "loss", "margin", "accuracy", "seconds", "started (UTC)", "error", "adapter",
               "dataset sha256", "ties/both bad dropped", "resumes", "base model"]
    return pd.DataFrame(rows, columns=columns)
