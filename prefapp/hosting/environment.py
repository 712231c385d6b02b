"""Where the app runs and what that implies: public binding, Hugging Face Spaces, persistent storage.

A Space sets SPACE_ID; with persistent storage enabled it mounts /data, which survives restarts. Without it
everything under the app directory is lost on restart, so the UI warns and offers a one-click export.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
from pathlib import Path

from prefapp.errors import ConfigError

PERSISTENT_ROOT = Path("/data")  # where a Space mounts persistent storage
TOKEN_ENV = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")  # where Hub tokens come from (a Space secret is one of these)
_TOKEN_SHAPE = re.compile(r"hf_[A-Za-z0-9]{16,}")  # a Hub access token, wherever it appears


def on_space() -> bool:
    return bool(os.environ.get("SPACE_ID"))


def is_loopback(host: str) -> bool:
    """True when `host` only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it may resolve to anything, so treat it as public
        return False


def check_bind(host: str, auth_enabled: bool, allow_public: bool) -> None:
    """Refuse to serve on a public interface with no accounts unless the admin said so explicitly."""
    if is_loopback(host) or auth_enabled or allow_public:
        return
    raise ConfigError(
        f"refusing to serve on {host} without accounts: anyone who can reach it could label, train and export. "
        "Configure users (PREFAPP_USERS_FILE or PREFAPP_USERS; `prefapp add-user NAME --role admin`), "
        "or on a Space set the variable PREFAPP_HF_ADMINS=<your Hub name> (sign-in with Hugging Face), "
        "or pass --allow-public (PREFAPP_ALLOW_PUBLIC=1) to run it open on purpose, or use --host 127.0.0.1"
    )


def persistent_data_dir(root: Path = PERSISTENT_ROOT) -> Path | None:
    """<root>/prefapp on a Space whose persistent storage is mounted and writable, else None."""
    if on_space() and root.is_dir() and os.access(root, os.W_OK):
        return root / "prefapp"
    return None


def storage_warning(data_dir: Path, root: Path = PERSISTENT_ROOT) -> str | None:
    """A warning when the data lives on a Space's ephemeral disk, else None."""
    if not on_space():
        return None
    try:
        Path(data_dir).resolve().relative_to(root.resolve())
        return None
    except ValueError:
        return (f"This Space has no persistent storage: the votes in {data_dir} are lost when it restarts. "
                "Export them (and push them to the Hub) before that, or enable persistent storage (/data).")


def access_text(host: str, sign_in: str | None) -> str:
    """One line for the header: who can reach this app (`sign_in`: how users sign in, None when nobody does)."""
    if sign_in is None:
        where = "this machine only" if is_loopback(host) else "anyone who can reach it"
        return f"Open access on {host} ({where}): no accounts are configured, so every visitor is an admin."
    return sign_in


def redact(text: str) -> str:
    """`text` with any Hub token (from the environment, or shaped like one) replaced by hf_***."""
    for name in TOKEN_ENV:
        token = os.environ.get(name, "")
        if len(token) >= 8:
            text = text.replace(token, "hf_***")
    return _TOKEN_SHAPE.sub("hf_***", text)


class RedactTokens(logging.Filter):
    """A logging filter that keeps Hub tokens out of every log line, whoever logs them (us, datasets, hub)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        return True


def install_log_redaction() -> None:
    """Add RedactTokens to every handler of the root logger (call after logging is configured)."""
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, RedactTokens) for f in handler.filters):
            handler.addFilter(RedactTokens())
