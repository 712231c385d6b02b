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


def test_outputs_are_never_written_through_links_or_over_files(tmp_path) -> None:
    from prefapp.hosting.paths import check_new_outputs

    exports = tmp_path / "data" / "exports"
    exports.mkdir(parents=True)
    check_new_outputs([exports / "new", exports / "new.parquet"], exports)
    (exports / "planted").symlink_to(tmp_path / "elsewhere")  # a link to a folder that does not exist yet
    (exports / "sub").symlink_to(tmp_path)
    for name in ("planted", "sub/x.parquet"):
        with pytest.raises(ConfigError, match="is a symbolic link: prefapp does not write through links"):
            check_new_outputs([exports / name], exports)
    (exports / "old.parquet").write_text("keep me")
    with pytest.raises(ConfigError, match="already exists: choose another name"):
        check_new_outputs([exports / "old.parquet"], exports)
    check_new_outputs([exports / "old.parquet"], exports, overwrite=True)
    linked_root = tmp_path / "linked-data"
    linked_root.symlink_to(tmp_path / "data")  # the data dir itself may be a link (a mounted volume)
    check_new_outputs([linked_root / "exports" / "fresh"], linked_root / "exports")


def test_an_export_refuses_a_planted_link_and_an_existing_parquet(tmp_path) -> None:
    from datasets import Dataset

    from prefapp.preferences.export import ExportCounts, save_export

    exports = tmp_path / "data" / "exports"
    exports.mkdir(parents=True)
    row = {"prompt": [{"role": "user", "content": "Q?"}], "chosen": [{"role": "assistant", "content": "a"}],
           "rejected": [{"role": "assistant", "content": "b"}]}
    dataset, counts = Dataset.from_list([row]), ExportCounts(votes=1, pairs=1, ties=0, both_bad=0)
    (exports / "round-1").symlink_to(tmp_path / "victim")
    with pytest.raises(ConfigError, match="symbolic link"):
        save_export(dataset, counts, exports, "round-1")
    assert not (tmp_path / "victim").exists()
    (exports / "round-2.parquet").write_text("an older export")
    with pytest.raises(ConfigError, match="already exists"):
        save_export(dataset, counts, exports, "round-2")
    assert (exports / "round-2.parquet").read_text() == "an older export"
    assert save_export(dataset, counts, exports, "round-3").parquet_path.exists()
