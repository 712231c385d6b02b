"""Accounts and roles: who may sign in, and what each role may do.

Users come from a TOML text (a file, `PREFAPP_USERS_FILE`, or the variable `PREFAPP_USERS`, which is how a
Hugging Face Space secret arrives). Passwords are stored only as salted PBKDF2-SHA256 hashes; a clear-text
password in the file is refused. `prefapp add-user` writes entries:

    [users.alice]
    role = "admin"
    password = "pbkdf2_sha256$600000$<salt hex>$<hash hex>"

Or, on a Hugging Face Space with `hf_oauth: true`, sign-in with Hugging Face (`HubLogin`): admins are the Hub
users named in `PREFAPP_HF_ADMINS`; annotators are those in `PREFAPP_HF_ANNOTATORS`, or every signed-in Hub user
when that is unset. Accounts take precedence when both are configured.

Two roles: an annotator labels and chats; an admin may also import, export, train, switch the generator,
back up and change shared settings. No gradio here: the UI asks `access.allows(user, role)`.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
import secrets
import tomllib
from dataclasses import dataclass
from pathlib import Path

from prefapp.errors import ConfigError

log = logging.getLogger(__name__)

ROLES = ("annotator", "admin")  # ordered: each role may do what the ones before it may
HASH_SCHEME = "pbkdf2_sha256"
HASH_ITERATIONS = 600_000  # OWASP's 2023 figure for PBKDF2-SHA256; about 0.3 s per login on a laptop core
_NAME_OK = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")  # also safe as a TOML bare key


@dataclass(frozen=True)
class User:
    name: str
    role: str
    password_hash: str  # HASH_SCHEME$iterations$salt_hex$hash_hex


def hash_password(password: str, iterations: int = HASH_ITERATIONS, salt: bytes | None = None) -> str:
    """A salted PBKDF2 hash of `password` in the form stored in the users file."""
    if len(password) < 8:
        raise ConfigError("the password is shorter than 8 characters: choose a longer one")
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, iterations)
    return f"{HASH_SCHEME}${iterations}${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    """True when `password` matches the stored hash (constant-time comparison)."""
    scheme, iterations, salt, expected = stored.split("$")
    digest = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), bytes.fromhex(salt), int(iterations))
    return scheme == HASH_SCHEME and hmac.compare_digest(digest.hex(), expected)


def check_name(name: str) -> str:
    if not _NAME_OK.match(name or ""):
        raise ConfigError(f"user name {name!r} is not allowed: use 1-64 letters, digits, '.', '_', '@' or '-'")
    return name


def _user(name: str, entry: object, where: str) -> User:
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: [users.{name}] must be a table with role and password")
    role, password = entry.get("role"), entry.get("password")
    if role not in ROLES:
        raise ConfigError(f"{where}: user {name!r} has role {role!r}: use one of {', '.join(ROLES)}")
    if not isinstance(password, str) or not _is_hash(password):
        raise ConfigError(f"{where}: user {name!r} has no password hash (clear text is refused): "
                          f"run `prefapp add-user {name} --role {role}` to write one")
    return User(check_name(name), role, password)


def _is_hash(value: str) -> bool:
    parts = value.split("$")
    return len(parts) == 4 and parts[0] == HASH_SCHEME and parts[1].isdigit() and all(parts[2:])


class Accounts:
    """The users who may sign in and their roles."""

    def __init__(self, users: dict[str, User]) -> None:
        if not users:
            raise ConfigError("the users list is empty: add an admin with `prefapp add-user NAME --role admin`")
        self.users = users

    @classmethod
    def from_toml(cls, text: str, where: str = "users") -> "Accounts":
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{where} is not valid TOML ({exc}): see `prefapp add-user --help`") from exc
        table = data.get("users", {})
        return cls({name: _user(name, entry, where) for name, entry in table.items()})

    @classmethod
    def from_env(cls, users_file: Path | None = None) -> "Accounts | None":
        """The configured accounts, or None when none are configured (the app then runs open)."""
        path = users_file or (Path(os.environ["PREFAPP_USERS_FILE"]) if os.environ.get("PREFAPP_USERS_FILE") else None)
        if path is not None:
            if not Path(path).is_file():
                raise ConfigError(f"users file {path} does not exist: create it with `prefapp add-user`")
            return cls.from_toml(Path(path).read_text(encoding="utf-8"), str(path))
        if os.environ.get("PREFAPP_USERS"):
            return cls.from_toml(os.environ["PREFAPP_USERS"], "PREFAPP_USERS")
        return None

    def check(self, username: str, password: str) -> bool:
        """gradio's login callback: True when the name exists and the password matches."""
        user = self.users.get((username or "").strip())
        ok = user is not None and verify_password(password or "", user.password_hash)
        if not ok:
            log.warning("failed sign-in for %r", (username or "")[:64])
        return ok

    def role(self, username: str | None) -> str | None:
        user = self.users.get(username or "")
        return user.role if user else None

    def allows(self, username: str | None, needed: str) -> bool:
        """True when `username` exists and its role is `needed` or above."""
        return role_allows(self.role(username), needed)

    def summary(self) -> str:
        return f"Sign-in required ({len(self.users)} accounts)."


def role_allows(role: str | None, needed: str) -> bool:
    return role is not None and ROLES.index(role) >= ROLES.index(needed)


HUB_ADMINS_ENV, HUB_ANNOTATORS_ENV = "PREFAPP_HF_ADMINS", "PREFAPP_HF_ANNOTATORS"
HUB_OAUTH_ENV = ("OAUTH_CLIENT_ID", "OAUTH_CLIENT_SECRET", "OAUTH_SCOPES", "OPENID_PROVIDER_URL")  # set by hf_oauth


def _hub_names(text: str) -> frozenset[str]:
    """Hub user names from "alice, @Bob": casefolded, as the Hub does not tell names apart by case."""
    return frozenset(name.strip().lstrip("@").casefold() for name in text.replace(";", ",").split(",")
                     if name.strip())


@dataclass(frozen=True)
class HubLogin:
    """Sign-in with Hugging Face on a Space: the role of a signed-in Hub user comes from their user name."""

    admins: frozenset[str]
    annotators: frozenset[str] | None = None  # None: every signed-in Hub user may label and chat

    @classmethod
    def from_env(cls) -> "HubLogin | None":
        """The Hub sign-in configured by PREFAPP_HF_ADMINS (and PREFAPP_HF_ANNOTATORS), or None."""
        admins = _hub_names(os.environ.get(HUB_ADMINS_ENV, ""))
        annotators = os.environ.get(HUB_ANNOTATORS_ENV)
        if not admins:
            if annotators:
                raise ConfigError(f"{HUB_ANNOTATORS_ENV} is set but {HUB_ADMINS_ENV} is empty: name at least one "
                                  "Hugging Face user as admin (e.g. PREFAPP_HF_ADMINS=your-hub-name)")
            return None
        missing = [name for name in HUB_OAUTH_ENV if not os.environ.get(name)]
        if missing:
            raise ConfigError(f"{HUB_ADMINS_ENV} asks for sign-in with Hugging Face, but {', '.join(missing)} "
                              "is not set: it works on a Space whose README front matter has `hf_oauth: true`; "
                              "elsewhere use accounts (`prefapp add-user NAME --role admin`)")
        return cls(admins, _hub_names(annotators) if annotators else None)

    def role(self, username: str | None) -> str | None:
        if not username:
            return None
        name = username.casefold()
        if name in self.admins:
            return "admin"
        return "annotator" if self.annotators is None or name in self.annotators else None

    def allows(self, username: str | None, needed: str) -> bool:
        return role_allows(self.role(username), needed)

    def summary(self) -> str:
        who = "any signed-in Hub user" if self.annotators is None else f"{len(self.annotators)} named Hub users"
        return f"Sign in with Hugging Face: {len(self.admins)} admins; {who} may label."


Access = Accounts | HubLogin  # who may sign in, and their roles


def access_from_env(users_file: Path | None = None) -> Access | None:
    """The configured sign-in: accounts (a users file or PREFAPP_USERS), else Hub sign-in, else None (open)."""
    return Accounts.from_env(users_file) or HubLogin.from_env()


def add_user(path: Path, name: str, role: str, password: str) -> None:
    """Add or replace one user in a users file (created when missing), keeping the others."""
    check_name(name)
    if role not in ROLES:
        raise ConfigError(f"role {role!r} is unknown: use one of {', '.join(ROLES)}")
    path = Path(path)
    users = Accounts.from_toml(path.read_text(encoding="utf-8"), str(path)).users if path.exists() else {}
    users[name] = User(name, role, hash_password(password))
    body = "".join(f'[users.{u.name}]\nrole = "{u.role}"\npassword = "{u.password_hash}"\n\n' for u in users.values())
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(body, encoding="utf-8")
    os.chmod(tmp, 0o600)
    tmp.replace(path)
