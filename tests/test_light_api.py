"""The light labelling routes (/api/v1/next_pair, /api/v1/vote) on a real server: the named API's rules in one request.

Each mode as `prefapp serve` launches it (`launch_options(access, service)`): open, accounts (basic auth or gradio's
sign-in cookie) and sign-in with Hugging Face (a signed session cookie, see tests/test_hub_login.py). Votes are
read back from the DuckDB file.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from prefapp.hosting.auth import Accounts, HubLogin, access_from_env, add_user
from prefapp.hosting.light_api import API_PREFIX, LightApi
from prefapp.hosting.routes import launch_options
from prefapp.service import PrefService
from prefapp.ui.app import PrefUI
from tests.browser import served
from tests.test_hub_login import session_cookie, space  # noqa: F401 (a fixture)

PASSWORD = "correct horse battery"


def stored(service: PrefService) -> list[tuple[str, str, str]]:
    return [(v.pair_id, v.choice, v.annotator) for v in service.store.votes()]


@pytest.fixture
def open_app(service: PrefService, monkeypatch) -> Iterator[str]:
    for name in ("PREFAPP_USERS", "PREFAPP_USERS_FILE", "PREFAPP_HF_ADMINS", "PREFAPP_TRUSTED_PROXIES", "SPACE_ID"):
        monkeypatch.delenv(name, raising=False)
    with served(PrefUI(service, None).blocks, **launch_options(None, service)) as url:
        yield url.rstrip("/")


def test_open_mode_labels_and_records_each_vote_once(open_app: str, service: PrefService) -> None:
    with httpx.Client(base_url=open_app, timeout=120) as http:
        pair = http.post(f"{API_PREFIX}/next_pair", json={"annotator": "ann"})
        assert pair.status_code == 200, pair.text
        body = pair.json()
        assert set(body) == {"pair_id", "prompt", "response_a", "response_b"} and body["prompt"]
        vote = {"pair_id": body["pair_id"], "choice": "A", "annotator": "ann"}
        first = http.post(f"{API_PREFIX}/vote", json=vote)
        assert first.status_code == 200, first.text
        assert first.json()["recorded"] is True and first.json()["message"].startswith("Recorded")
        again = http.post(f"{API_PREFIX}/vote", json={**vote, "choice": "B"})  # a double click, or a retry
        assert again.json()["recorded"] is False and again.json()["message"].startswith("Already recorded")
        assert again.json()["mine"] == 1 and again.json()["total"] == 1
    assert stored(service) == [(body["pair_id"], "A", "ann")]


@pytest.mark.parametrize("payload, status, says", [
    ({"pair_id": "p", "choice": "C", "annotator": "ann"}, 400, "send one of 'A', 'B', 'tie', 'both_bad'"),
    ({"pair_id": "p", "choice": 1, "annotator": "ann"}, 400, "choice=1 is not allowed"),
    ({"pair_id": 7, "choice": "A", "annotator": "ann"}, 400, "pair_id=7 is not text: send a string"),
    ({"choice": "A", "annotator": "ann"}, 400, "missing parameter 'pair_id': send a JSON object with pair_id, choice"),
    ({"pair_id": "p", "choice": "A", "annotator": "ann", "x": 1}, 400, "unknown parameter 'x'"),
    ({"pair_id": "no-such-pair", "choice": "A", "annotator": "ann"}, 400, "unknown pair 'no-such-pair'"),
    ({"pair_id": "p", "choice": "A", "annotator": " "}, 400, "enter your name"),
    (["p", "A", "ann"], 400, "not an object: send the parameters as a JSON object"),
    (b"{not json", 400, "The body is not JSON"),
    (b"x" * (65 * 1024), 413, "over 64 KiB"),
])
def test_bad_input_gets_a_plain_message_naming_the_fix(open_app: str, service: PrefService, payload: object,
                                                       status: int, says: str) -> None:
    with httpx.Client(base_url=open_app, timeout=60) as http:
        if isinstance(payload, bytes):
            answer = http.post(f"{API_PREFIX}/vote", content=payload, headers={"content-type": "application/json"})
        else:
            answer = http.post(f"{API_PREFIX}/vote", json=payload)
    assert answer.status_code == status and answer.headers["content-type"].startswith("text/plain"), answer.text
    assert says in answer.text, answer.text
    assert stored(service) == []


def test_only_post_is_served(open_app: str) -> None:
    assert httpx.get(f"{open_app}{API_PREFIX}/vote", timeout=30).status_code == 405


def test_a_page_on_another_site_cannot_call_the_routes(open_app: str, service: PrefService) -> None:
    with httpx.Client(base_url=open_app, timeout=120) as http:
        pair = http.post(f"{API_PREFIX}/next_pair", json={"annotator": "ann"}, headers={"Origin": open_app}).json()
        vote = {"pair_id": pair["pair_id"], "choice": "A", "annotator": "ann"}
        evil = http.post(f"{API_PREFIX}/vote", json=vote, headers={"Origin": "https://evil.example"})
        assert evil.status_code == 403 and "only this app's own pages" in evil.text
        assert stored(service) == []
        assert http.post(f"{API_PREFIX}/vote", json=vote, headers={"Origin": open_app}).status_code == 200


@pytest.fixture
def accounts(tmp_path_factory) -> Accounts:
    path = tmp_path_factory.mktemp("light") / "users.toml"
    add_user(path, "ann", "annotator", PASSWORD)
    add_user(path, "boss", "admin", PASSWORD)
    return Accounts.from_toml(path.read_text())


@pytest.fixture
def accounts_app(service: PrefService, accounts: Accounts) -> Iterator[str]:
    with served(PrefUI(service, accounts).blocks, **launch_options(accounts, service)) as url:
        yield url.rstrip("/")


def test_accounts_sign_in_by_basic_auth_or_cookie_and_cannot_forge_the_annotator(
        accounts_app: str, service: PrefService) -> None:
    with httpx.Client(base_url=accounts_app, timeout=120) as anonymous:
        refused = anonymous.post(f"{API_PREFIX}/next_pair", json={"annotator": "ann"})
        assert refused.status_code == 401 and "curl -u NAME:PASSWORD" in refused.text
        assert refused.headers["www-authenticate"].startswith("Basic")
        wrong = anonymous.post(f"{API_PREFIX}/next_pair", json={}, auth=("ann", "not the password"))
        assert wrong.status_code == 401 and "Wrong name or password" in wrong.text
        garbled = anonymous.post(f"{API_PREFIX}/next_pair", json={}, headers={"Authorization": "Basic !!!"})
        assert garbled.status_code == 401 and "not HTTP basic auth" in garbled.text
    with httpx.Client(base_url=accounts_app, timeout=120, auth=("ann", PASSWORD)) as ann:
        pair = ann.post(f"{API_PREFIX}/next_pair", json={}).json()  # no annotator needed: the account is it
        vote = ann.post(f"{API_PREFIX}/vote", json={"pair_id": pair["pair_id"], "choice": "B", "annotator": "boss"})
        assert vote.status_code == 200 and vote.json()["recorded"], vote.text
    with httpx.Client(base_url=accounts_app, timeout=120) as boss:  # gradio's sign-in cookie
        assert boss.post("/login", data={"username": "boss", "password": PASSWORD}).status_code == 200
        pair2 = boss.post(f"{API_PREFIX}/next_pair", json={"annotator": "ann"}).json()
        assert boss.post(f"{API_PREFIX}/vote", json={"pair_id": pair2["pair_id"], "choice": "tie"}).status_code == 200
    assert sorted(stored(service)) == sorted([(pair["pair_id"], "B", "ann"), (pair2["pair_id"], "tie", "boss")])


def test_hub_sign_in_needs_a_signed_session_and_a_role(space, service: PrefService, monkeypatch) -> None:  # noqa: F811
    monkeypatch.setenv("PREFAPP_HF_ANNOTATORS", "bob")
    login = access_from_env()
    assert isinstance(login, HubLogin)
    with served(PrefUI(service, login).blocks, **launch_options(login, service)) as url:
        base = url.rstrip("/")

        def post(path: str, body: dict, user: str | None = None, secret: str = "space-oauth-secret") -> httpx.Response:
            cookies = {"Cookie": f"session={session_cookie(user, secret)}"} if user else {}
            return httpx.post(f"{base}{API_PREFIX}/{path}", json=body, headers=cookies, timeout=120)

        visitor = post("next_pair", {"annotator": "bob"})
        assert visitor.status_code == 401 and "Sign in with Hugging Face" in visitor.text
        assert visitor.headers["content-type"].startswith("text/plain")
        assert post("next_pair", {}, "bob", secret="forged").status_code == 401  # a cookie not signed by the Space
        stranger = post("next_pair", {}, "carol")  # signed in, but not among the annotators
        assert stranger.status_code == 403 and "needs the annotator role" in stranger.text
        pair = post("next_pair", {"annotator": "alice"}, "bob").json()
        assert post("vote", {"pair_id": pair["pair_id"], "choice": "A", "annotator": "alice"}, "bob").json()["recorded"]
    assert stored(service) == [(pair["pair_id"], "A", "bob")]


def test_a_route_without_a_role_is_refused_to_everyone(service: PrefService) -> None:
    light = LightApi(service, None)
    app = Starlette(routes=[light._route("vote", light.vote, role=None)])
    with TestClient(app) as client:
        answer = client.post(f"{API_PREFIX}/vote", json={"pair_id": "p", "choice": "A", "annotator": "ann"})
    assert answer.status_code == 403 and "declares no role" in answer.text
    assert stored(service) == []
