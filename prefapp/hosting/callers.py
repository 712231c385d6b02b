"""Who sent a request and from where, read from its ASGI scope: the signed-in account or Hub user, and the client
address the sign-in rate limit counts failures by.

The address: the TCP peer, unless the peer is a proxy this app was told to trust. Behind a Hugging Face Space's proxy
every request arrives from the proxy, so counting by the peer would limit everyone at once or nobody; there the
client is in `X-Forwarded-For`. That header is the client's to write, so it is read only when the peer is trusted
(`TrustedProxies`: on a Space, the peer, which can only be the Space's proxy, and private addresses behind it; else
the addresses in `PREFAPP_TRUSTED_PROXIES`), and then from the right: each trusted proxy appends the address it got
the request from, so the right-most address that is not a trusted proxy is the one no client could forge.
uvicorn, gradio's server, would otherwise rewrite the client address itself from that header whenever the peer is
127.0.0.1 (its FORWARDED_ALLOW_IPS default), before any middleware sees the request: `one_rule_for_proxies` turns
that off unless an admin set FORWARDED_ALLOW_IPS, so the rule above is the only one.
"""

from __future__ import annotations

import ipaddress
import os
import time
from dataclasses import dataclass
from http.cookies import SimpleCookie

from prefapp.errors import ConfigError
from prefapp.hosting.environment import on_space

TRUSTED_PROXIES_ENV = "PREFAPP_TRUSTED_PROXIES"
UVICORN_PROXIES_ENV = "FORWARDED_ALLOW_IPS"  # uvicorn reads it when gradio's launch() builds the server
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
# Behind a Space's proxy: hops inside the Hub's own network (never a visitor's address on the public internet).
PRIVATE = tuple(ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10",
                                                  "127.0.0.0/8", "fc00::/7", "::1/128"))


@dataclass(frozen=True)
class TrustedProxies:
    """The proxies whose `X-Forwarded-For` is believed. Empty (the default): the header is never read."""

    networks: tuple[Network, ...] = ()
    any_peer: bool = False  # on a Space: the peer is the Space's proxy, whatever its address

    @classmethod
    def from_env(cls) -> "TrustedProxies":
        """PREFAPP_TRUSTED_PROXIES (addresses or networks, comma-separated); on a Space also its proxy."""
        text = os.environ.get(TRUSTED_PROXIES_ENV, "")
        networks = []
        for item in (i.strip() for i in text.split(",")):
            if not item:
                continue
            try:
                networks.append(ipaddress.ip_network(item, strict=False))
            except ValueError as exc:
                raise ConfigError(f"{TRUSTED_PROXIES_ENV}: {item!r} is not an IP address or network: list the "
                                  f"proxies in front of this app, e.g. {TRUSTED_PROXIES_ENV}=10.0.0.5,192.168.0.0/16"
                                  ) from exc
        if on_space():
            return cls(tuple(networks) + PRIVATE, any_peer=True)
        return cls(tuple(networks))

    def trusts(self, address: str) -> bool:
        if not self.networks:
            return False
        ip = _ip(address)
        return ip is not None and any(ip in network for network in self.networks)

    def client(self, peer: str, forwarded_for: list[str]) -> str:
        """The client address: `peer`, or when the peer is trusted the right-most untrusted X-Forwarded-For hop."""
        if not (self.any_peer or self.trusts(peer)):
            return peer  # a header from an untrusted peer is the client's own claim
        hops = [hop.strip() for value in forwarded_for for hop in value.split(",") if hop.strip()]
        for hop in reversed(hops):
            if _ip(hop) is None:
                return peer  # garbage where a trusted proxy writes an address: believe nothing in it
            if not self.trusts(hop):
                return hop
        return hops[0] if hops else peer  # every hop a trusted proxy: the first is as close to the client as known


def one_rule_for_proxies() -> None:
    """Keep uvicorn from believing X-Forwarded-For on its own (see the module docstring); call before launch()."""
    os.environ.setdefault(UVICORN_PROXIES_ENV, "")  # "" matches no peer: uvicorn leaves the client address alone


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.strip().strip("[]"))
    except ValueError:
        return None


def _headers(scope: dict, name: bytes) -> list[str]:
    return [v.decode("latin-1") for k, v in scope.get("headers", []) if k.lower() == name]


def client_address(scope: dict, trusted: TrustedProxies = TrustedProxies()) -> str:
    """The client's address for per-address limits (see the module docstring)."""
    client = scope.get("client")
    peer = str(client[0]) if client else "unknown"
    return trusted.client(peer, _headers(scope, b"x-forwarded-for"))


def hub_user_of(scope: dict) -> str | None:
    """The Hub user name in the signed session gradio's OAuth keeps (None: not signed in, or expired)."""
    info = (scope.get("session") or {}).get("oauth_info") or {}
    if info.get("expires_at") is not None and info["expires_at"] < time.time():
        return None
    return (info.get("userinfo") or {}).get("preferred_username")


def account_of(scope: dict) -> str | None:
    """The account name of gradio's password sign-in cookie (None: not signed in)."""
    app = scope.get("app")
    cookie_id, tokens = getattr(app, "cookie_id", None), getattr(app, "tokens", None)
    if cookie_id is None or not isinstance(tokens, dict):
        return None
    cookies = _cookies(scope)
    token = cookies.get(f"access-token-{cookie_id}") or cookies.get(f"access-token-unsecure-{cookie_id}")
    return tokens.get(token) if token else None


def _cookies(scope: dict) -> dict[str, str]:
    raw = "; ".join(_headers(scope, b"cookie"))
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(raw)
    except Exception:  # a malformed cookie header: treat as none
        return {}
    return {k: m.value for k, m in jar.items()}
