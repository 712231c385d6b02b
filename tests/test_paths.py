"""User-given paths stay inside the data directory."""

from __future__ import annotations

import pytest

from prefapp.config import ConfigError
from prefapp.hosting.paths import confine


def test_paths_inside_the_data_dir_resolve(tmp_path) -> None:
    (tmp_path / "imports").mkdir()
    assert confine("imports/p.jsonl", tmp_path) == tmp_path.resolve() / "imports" / "p.jsonl"
    assert confine(tmp_path / "imports" / "p.jsonl", tmp_path) == tmp_path.resolve() / "imports" / "p.jsonl"


@pytest.mark.parametrize("path", ["../outside.jsonl", "/etc/passwd", "imports/../../x", "~/.ssh/id_rsa"])
def test_escapes_are_refused_with_the_fix(tmp_path, path) -> None:
    with pytest.raises(ConfigError, match="outside the data directory.*PREFAPP_ALLOW_OUTSIDE_PATHS"):
        confine(path, tmp_path / "data")


def test_symlinks_out_are_refused_and_the_admin_can_allow_outside(tmp_path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "link").symlink_to(tmp_path)
    with pytest.raises(ConfigError, match="outside the data directory"):
        confine("link/secret.txt", data)
    assert str(confine("/etc/passwd", data, allow_outside=True)) == "/etc/passwd"
    with pytest.raises(ConfigError, match="empty"):
        confine("  ", data)
