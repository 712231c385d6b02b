"""Sign-in with Hugging Face on a Space: the Hub user name decides the role, on the server, for UI and API alike.

The app runs as it does on a Space with `hf_oauth: true` (SYSTEM=spaces, SPACE_ID and the OAUTH_* variables the
Space injects), so gradio installs its real OAuth routes and signed session middleware. huggingface.co cannot be
reached here, so the sign-in redirect itself is not exercised: a test user's session is the cookie gradio's
callback would have set, signed with the Space's OAuth secret. A cookie signed with any other key is worthless.
"""

from __future__ import annotations

import hashlib
import json
import time
from base64 import b64encode
from collections.abc import Iterator

import gradio.http_server
import gradio.oauth
import itsdangerous
import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError

from prefapp.hosting.auth import Accounts, HubLogin, access_from_env, add_user
from prefapp.config import ConfigError
from prefapp.service import PrefService
from prefapp.ui.app import PrefUI
from tests.browser import FIRST_PAIR_MS, chromium, served

OAUTH_SECRET = "space-oauth-secret"
SPACE_ENV = {"SYSTEM": "spaces", "SPACE_ID": "team/prefapp", "OAUTH_CLIENT_ID": "prefapp-client",
             "OAUTH_CLIENT_SECRET": OAUTH_SECRET, "OAUTH_SCOPES": "openid profile",
             "OPENID_PROVIDER_URL": "http://127.0.0.1:9"}  # what a Space with hf_oauth: true provides


def session_cookie(hub_user: str, secret: str = OAUTH_SECRET) -> str:
    """The `session` cookie gradio's OAuth callback sets after `hub_user` signs in (Starlette's signed format)."""
    session = {"oauth_info": {"access_token": "hf_oauth_access", "token_type": "bearer", "scope": "openid profile",
                              "expires_at": int(time.time()) + 3600,
                              "userinfo": {"preferred_username": hub_user, "name": hub_user.title(),
                                           "profile": f"https://huggingface.co/{hub_user}", "picture": ""}}}
    key = hashlib.sha256((secret + "-v4").encode()).hexdigest()  # gradio.oauth.attach_oauth's session key
    return itsdangerous.TimestampSigner(key).sign(b64encode(json.dumps(session).encode())).decode()


@pytest.fixture
def space(monkeypatch) -> None:
    for name, value in SPACE_ENV.items():
        monkeypatch.setenv(name, value)
        if hasattr(gradio.oauth, name):  # gradio read these when it was imported; a Space sets them before
            monkeypatch.setattr(gradio.oauth, name, value)
    for name in ("PREFAPP_USERS", "PREFAPP_USERS_FILE", "PREFAPP_HF_ANNOTATORS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PREFAPP_HF_ADMINS", "alice")
    # Not the Spaces dev-mode reloader, which needs the `spaces` package a Space has and this machine does not.
    monkeypatch.setattr(gradio.http_server, "get_space", lambda: None)


@pytest.fixture
def app(space, service: PrefService) -> Iterator[str]:
    login = access_from_env()
    assert isinstance(login, HubLogin)
    with served(PrefUI(service, login).blocks) as url:
        yield url


def client_as(url: str, hub_user: str | None, secret: str = OAUTH_SECRET) -> Client:
    headers = {"Cookie": f"session={session_cookie(hub_user, secret)}"} if hub_user else None
    return Client(url, headers=headers, verbose=False)


def test_hub_login_is_configured_by_hub_user_names(space, monkeypatch) -> None:
    login = HubLogin.from_env()
    assert login == HubLogin(frozenset({"alice"}))
    assert login.role("alice") == "admin" and login.role("bob") == "annotator" and login.role(None) is None
    monkeypatch.setenv("PREFAPP_HF_ANNOTATORS", "bob, @Carol")
    monkeypatch.setenv("PREFAPP_HF_ADMINS", "Alice")
    login = HubLogin.from_env()
    assert login.role("carol") == "annotator" and login.role("mallory") is None and login.allows("alice", "admin")
    assert not login.allows("bob", "admin") and not login.allows("mallory", "annotator")


def test_bad_hub_login_config_names_the_fix(space, monkeypatch, tmp_path) -> None:
    monkeypatch.delenv("OAUTH_CLIENT_SECRET")
    with pytest.raises(ConfigError, match="OAUTH_CLIENT_SECRET is not set.*hf_oauth: true"):
        HubLogin.from_env()
    monkeypatch.delenv("PREFAPP_HF_ADMINS")
    assert HubLogin.from_env() is None and access_from_env() is None  # neither configured: the app runs open
    monkeypatch.setenv("PREFAPP_HF_ANNOTATORS", "bob")
    with pytest.raises(ConfigError, match="PREFAPP_HF_ADMINS is empty: name at least one"):
        HubLogin.from_env()
    users = tmp_path / "users.toml"
    add_user(users, "boss", "admin", "correct horse battery")
    assert isinstance(access_from_env(users), Accounts)  # accounts win over Hub sign-in


def test_roles_follow_the_hub_user_over_the_api(app, service: PrefService) -> None:
    bob = client_as(app, "bob")
    pair_id, _, _, _ = bob.predict("alice", api_name="/next_pair")  # claims to be the admin
    assert bob.predict(pair_id, "A", "alice", api_name="/vote").startswith("Recorded")
    assert [(v.pair_id, v.annotator) for v in service.store.votes()] == [(pair_id, "bob")]
    with pytest.raises(AppError, match=r"\(bob, annotator\) may not do this: it needs the admin role"):
        bob.predict("", "", api_name="/export")
    assert not service.config.exports_dir.exists()

    for anonymous in (client_as(app, None), client_as(app, "alice", secret="guessed")):  # no or forged session
        with pytest.raises(AppError, match="not signed in: use 'Sign in with Hugging Face'"):
            anonymous.predict("alice", api_name="/next_pair")
        with pytest.raises(AppError, match="not signed in"):
            anonymous.predict("", "", api_name="/export")
    assert len(service.store.votes()) == 1

    assert client_as(app, "alice").predict("", "", api_name="/export").startswith("Exported 1 pairs")


def test_the_browser_shows_sign_in_then_labels_as_the_hub_user(app, service: PrefService,
                                                                chromium_installed: None) -> None:
    import playwright.sync_api as playwright_api
    expect = playwright_api.expect
    with chromium() as browser:
        anonymous = browser.new_page()
        anonymous.goto(app)
        expect(anonymous.get_by_role("button", name="Sign in with Hugging Face")).to_be_visible()
        expect(anonymous.get_by_label("Access")).to_have_value(
            "Not signed in: use the 'Sign in with Hugging Face' button to label.")
        expect(anonymous.locator("#pair-id textarea")).to_have_value("")  # no pair is served to nobody

        context = browser.new_context()
        context.add_cookies([{"name": "session", "value": session_cookie("bob"), "url": app}])
        page = context.new_page()
        page.goto(app)
        expect(page.get_by_role("button", name="Logout (bob)")).to_be_visible()
        expect(page.get_by_label("Access")).to_have_value("Signed in as bob (annotator).")
        expect(page.get_by_label("Your name (annotator)")).to_have_value("bob")
        pair_box = page.locator("#pair-id textarea")
        expect(pair_box).not_to_have_value("", timeout=FIRST_PAIR_MS)  # the first pair came without typing a name
        pair_id = pair_box.input_value()
        for tab in ("Data", "Train", "Quality"):  # disabled, and so taken off the tab bar
            admin_tab = page.get_by_role("tab", name=tab, include_hidden=True)
            expect(admin_tab).to_be_disabled()
            expect(admin_tab).to_be_hidden()
        page.get_by_role("button", name="A is better").click()
        expect(page.get_by_label("Your votes")).to_have_value("1")

        admin = browser.new_context()
        admin.add_cookies([{"name": "session", "value": session_cookie("alice"), "url": app}])
        admin_page = admin.new_page()
        admin_page.goto(app)
        expect(admin_page.get_by_label("Access")).to_have_value("Signed in as alice (admin).")
        for tab in ("Data", "Train", "Quality"):
            expect(admin_page.get_by_role("tab", name=tab)).to_be_enabled()
            expect(admin_page.get_by_role("tab", name=tab)).to_be_visible()
    assert [(v.pair_id, v.choice, v.annotator) for v in service.store.votes()] == [(pair_id, "A", "bob")]


@pytest.fixture
def guarded(space, service: PrefService, monkeypatch) -> Iterator[str]:
    """The app as `prefapp serve` launches it: the Doorman in front and a 1 MiB upload limit."""
    from prefapp.hosting.routes import launch_options

    monkeypatch.setenv("PREFAPP_MAX_UPLOAD_MB", "1")
    login = access_from_env()
    with served(PrefUI(service, login).blocks, **launch_options(login)) as url:
        yield url


def test_visitors_who_have_not_signed_in_meet_closed_doors(guarded: str) -> None:
    import httpx

    base = guarded.rstrip("/")
    big = {"files": ("big.txt", b"x" * (2 * 1024 * 1024), "text/plain")}
    small = {"files": ("prompts.txt", b"What is 2 + 2?\n", "text/plain")}
    with httpx.Client(timeout=60) as anonymous:
        page = anonymous.get(f"{base}/")
        assert page.status_code == 200 and "Sign in with Hugging Face" in page.text
        assert "demo" not in page.text.lower() and "components" not in page.text  # no config, no model name
        for method, path in (("GET", "/config"), ("GET", "/gradio_api/info"), ("POST", "/gradio_api/queue/join"),
                             ("GET", "/gradio_api/queue/data?session_hash=x"), ("GET", "/gradio_api/file=app.py"),
                             ("POST", "/gradio_api/call/next_pair"), ("GET", "/gradio_api/openapi.json"),
                             ("GET", "/gradio_api/some-route-gradio-adds-later")):
            answer = anonymous.request(method, f"{base}{path}", json={"data": ["alice"]})
            assert answer.status_code == 401 and "Sign in with Hugging Face" in answer.text, (path, answer.text)
        assert anonymous.post(f"{base}/gradio_api/upload", files=small).status_code == 401
        # open to visitors (here it fails reaching huggingface.co, which this machine cannot)
        assert anonymous.get(f"{base}/login/huggingface", follow_redirects=False).status_code != 401

    def as_user(name: str) -> httpx.Client:
        return httpx.Client(timeout=60, headers={"Cookie": f"session={session_cookie(name)}"})

    with as_user("bob") as bob, as_user("alice") as alice:
        assert bob.get(f"{base}/config").status_code == 200
        assert bob.get(f"{base}/gradio_api/info").status_code == 200
        refused = bob.post(f"{base}/gradio_api/upload", files=small)  # an annotator needs no uploads
        assert refused.status_code == 403 and "admin role" in refused.text
        assert alice.post(f"{base}/gradio_api/upload", files=small).status_code == 200
        too_big = alice.post(f"{base}/gradio_api/upload", files=big)
        assert too_big.status_code in (400, 413), too_big.text
    assert client_as(guarded, "bob").predict("x", api_name="/next_pair")[0]  # a signed-in annotator labels
