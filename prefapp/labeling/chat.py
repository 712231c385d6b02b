"""The Chat tab's replies: the base and the aligned round answer the same message through the generator backend
(in-process or an engine), whole or streamed as they are written."""

from __future__ import annotations

from typing import Iterator

from prefapp.config import SamplingConfig
from prefapp.labeling.backends import Generator
from prefapp.labeling.generation import Messages, as_messages


def replies(backend: Generator, sampling: SamplingConfig, aligned: str | None, base_history: Messages,
            aligned_history: Messages, message: str) -> tuple[str, str | None]:
    """(base reply, aligned round's reply or None when there is no usable round)."""
    turn = as_messages(message)
    base = backend.sample([base_history + turn], sampling, adapter=None)[0][0]
    if aligned is None:
        return base, None
    return base, backend.sample([aligned_history + turn], sampling, adapter=aligned)[0][0]


def stream(backend: Generator, sampling: SamplingConfig, aligned: str | None, base_history: Messages,
           aligned_history: Messages, message: str) -> Iterator[tuple[str, str | None]]:
    """`replies`, streamed: (base so far, aligned so far; None without a usable round), the base first; the first
    item, ("", ...), comes before the model runs, so a chat view can show the user's turn at once."""
    turn = as_messages(message)
    base = ""
    yield base, None if aligned is None else ""  # at once, before the model runs: it may be busy writing pairs
    for base in backend.stream(base_history + turn, sampling, adapter=None):
        yield base, None if aligned is None else ""
    if aligned is None:
        yield base, None
        return
    reply = ""
    for reply in backend.stream(aligned_history + turn, sampling, adapter=aligned):
        yield base, reply
    yield base, reply
