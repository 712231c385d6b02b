"""Shared fixtures: a temporary data dir, the bundled demo model, a service wired to both, and the Chromium check."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never reach the Hub; the demo model ships in data/
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import shutil

import pytest

from prefapp.config import AppConfig, SamplingConfig
from prefapp.models import ModelChoice, Policy, resolve_model
from tests.browser import CHROMIUM


@pytest.fixture(scope="session")
def demo_choice() -> ModelChoice:
    return resolve_model("demo")


@pytest.fixture(scope="session")
def demo_policy(demo_choice: ModelChoice) -> Policy:
    """One loaded demo model for read-only tests (no adapters get loaded into it)."""
    return Policy(demo_choice, device="cpu")


@pytest.fixture
def app_config(tmp_path) -> AppConfig:
    return AppConfig(model="demo", data_dir=tmp_path / "data", sampling=SamplingConfig(max_new_tokens=48))


@pytest.fixture
def service(app_config, demo_choice):
    from prefapp.service import PrefService

    svc = PrefService.open(app_config, choice=demo_choice, seed=0)
    yield svc
    svc.close()


@pytest.fixture
def chromium_installed() -> None:
    """Fail, never skip, without the browser: a skipped browser test would hide a broken set-up."""
    if shutil.which(CHROMIUM) is None:
        pytest.fail("Debian's chromium is missing: run `make browser` (apt-get install -y chromium)", pytrace=False)
