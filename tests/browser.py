"""What the live-app and browser tests share: a served app on a free port, and Debian's Chromium with the flags
it needs here (conftest's `chromium_installed` fails the browser tests without it)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

CHROMIUM = "/usr/bin/chromium"  # Debian's package: Playwright cannot download its own browser here
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]  # without the networking flags Chromium keeps dialling out from a closed network
TIMEOUT_MS = 30_000
FIRST_PAIR_MS = 120_000  # the first pair of a fresh app waits on a generate call: slow on a loaded 2-core machine


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def served(blocks: Any, **launch: Any) -> Iterator[str]:
    """`blocks` launched on a free local port (gradio's queue on); yields its URL and closes it afterwards."""
    blocks.queue().launch(server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True,
                          **launch)
    try:
        yield blocks.local_url
    finally:
        blocks.close()


@contextmanager
def chromium() -> Iterator[Any]:
    """A headless Debian Chromium driven by Playwright, closed afterwards."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def _patient_expect() -> None:
    """`expect(...)` waits 5 s by default; on a loaded 2-core CI machine the first pair can take longer."""
    from playwright.sync_api import expect

    expect.set_options(timeout=TIMEOUT_MS)


_patient_expect()
