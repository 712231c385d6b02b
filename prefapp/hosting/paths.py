"""User-given paths stay inside the data directory unless the admin configured otherwise.

An export directory or an import file typed into the app is resolved (symlinks and `..` included) and must
lie under the data directory; `allow_outside=True` (PREFAPP_ALLOW_OUTSIDE_PATHS=1) lifts that for trusted setups.
"""

from __future__ import annotations

from pathlib import Path

from prefapp.errors import ConfigError


def confine(path: str | Path, root: str | Path, allow_outside: bool = False) -> Path:
    """`path` (relative paths are taken from `root`) resolved, or a ConfigError when it leaves `root`."""
    if not str(path).strip():
        raise ConfigError("the path is empty: give a file or folder inside the data directory")
    if "\x00" in str(path):
        raise ConfigError("the path contains a NUL byte: type a plain file name")
    root = Path(root).resolve()
    candidate = Path(path).expanduser()
    resolved = (candidate if candidate.is_absolute() else root / candidate).resolve()
    if allow_outside or resolved == root or root in resolved.parents:
        return resolved
    raise ConfigError(
        f"{path} is outside the data directory {root}: put the file under it (or give a path relative to it); "
        "an admin can allow other places with PREFAPP_ALLOW_OUTSIDE_PATHS=1"
    )


def check_new_outputs(paths: list[str | Path], root: str | Path, overwrite: bool = False) -> None:
    """Refuse to write any of `paths` through a symlink (the path itself or a folder between it and `root`), or
    over an existing file or folder unless `overwrite`; a ConfigError names the fix."""
    root = Path(root)
    for path in map(Path, paths):
        for part in (path, *path.parents):
            if part == root or root not in part.parents:
                break
            if part.is_symlink():
                raise ConfigError(f"{part} is a symbolic link: prefapp does not write through links; remove the link "
                                  "or choose another name")
        if path.exists() and not overwrite:
            raise ConfigError(f"{path} already exists: choose another name, or delete or move it first")
