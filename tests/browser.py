"""What the live-app and browser tests share: Debian's Chromium, the flags it needs here, and a free port."""

from __future__ import annotations

import shutil
import socket

import pytest

CHROMIUM = "/usr/bin/chromium"  # Debian's package: Playwright cannot download its own browser here
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]  # without the networking flags Chromium keeps dialling out from a closed network
TIMEOUT_MS = 30_000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def chromium_installed() -> None:
    """Fail, never skip, without the browser: a skipped browser test would hide a broken set-up."""
    if shutil.which(CHROMIUM) is None:
        pytest.fail("Debian's chromium is missing: run `make browser` (apt-get install -y chromium)", pytrace=False)


def _patient_expect() -> None:
    """`expect(...)` waits 5 s by default; on a loaded 2-core CI machine the first pair can take longer."""
    from playwright.sync_api import expect

    expect.set_options(timeout=TIMEOUT_MS)


_patient_expect()
