"""What a Hugging Face Space needs besides the code: its requirements and the README's front matter."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _requirements() -> list[str]:
    lines = (ROOT / "requirements.txt").read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def _front_matter() -> dict[str, str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert text.startswith("---\n"), "README.md must open with the Spaces front matter"
    block = text.split("---\n")[1]
    return {key.strip(): value.strip().strip('"') for key, value in
            (line.split(":", 1) for line in block.splitlines() if ":" in line)}


def test_space_requirements_match_the_package_dependencies() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert _requirements() == project["dependencies"]


def test_space_front_matter_runs_app_py_with_oauth_on_a_python_the_code_supports() -> None:
    meta = _front_matter()
    assert meta["sdk"] == "gradio" and meta["app_file"] == "app.py"
    assert meta["hf_oauth"] == "true"  # sign-in with Hugging Face (PREFAPP_HF_ADMINS) needs it
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    minimum = project["requires-python"].removeprefix(">=")
    assert tuple(map(int, meta["python_version"].split("."))) >= tuple(map(int, minimum.split(".")))
