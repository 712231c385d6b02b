"""Accounts and roles: hashed passwords, and the role checked on the server for the API and for UI events."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import httpx
import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError

from prefapp.hosting.auth import Accounts, add_user, hash_password, verify_password
from prefapp.hosting.routes import launch_options
from prefapp.config import ConfigError
from prefapp.service import PrefService
from prefapp.ui.access import ADMIN, ANNOTATOR, PUBLIC, guard_events, handler_name, on, role_of
from prefapp.ui.app import API_NAMES, PrefUI
from tests.browser import FIRST_PAIR_MS, TIMEOUT_MS, chromium, served

PASSWORD = "correct horse battery"
ADMIN_ONLY_API = {"/export": ("", ""), "/train": (), "/train_status": (), "/set_generator": ("base",)}


@pytest.fixture(scope="module")
def users_toml(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("auth") / "users.toml"
    add_user(path, "ann", "annotator", PASSWORD)
    add_user(path, "boss", "admin", PASSWORD)
    return path.read_text()


@pytest.fixture
def app(service: PrefService, users_toml: str) -> Iterator[tuple[PrefUI, str]]:
    accounts = Accounts.from_toml(users_toml)
    ui = PrefUI(service, accounts)
    with served(ui.blocks, **launch_options(accounts)) as url:  # as `prefapp serve` launches it
        yield ui, url


def test_passwords_are_stored_only_as_salted_hashes(tmp_path) -> None:
    path = tmp_path / "users.toml"
    add_user(path, "ann", "annotator", PASSWORD)
    add_user(path, "ann", "admin", "another password")  # replaced, not duplicated
    text = path.read_text()
    assert PASSWORD not in text and "another password" not in text and text.count("[users.ann]") == 1
    accounts = Accounts.from_toml(text)
    assert accounts.check("ann", "another password") and not accounts.check("ann", PASSWORD)
    assert accounts.allows("ann", "admin") and accounts.allows("ann", "annotator")
    assert not accounts.allows("nobody", "annotator") and not accounts.check("nobody", PASSWORD)
    assert hash_password(PASSWORD) != hash_password(PASSWORD)  # salted
    assert verify_password(PASSWORD, hash_password(PASSWORD, iterations=1000))


def test_bad_users_config_names_the_fix() -> None:
    with pytest.raises(ConfigError, match="clear text is refused.*prefapp add-user"):
        Accounts.from_toml('[users.eve]\nrole = "admin"\npassword = "hunter22"\n')
    with pytest.raises(ConfigError, match="role 'root'.*annotator, admin"):
        Accounts.from_toml(f'[users.eve]\nrole = "root"\npassword = "{hash_password(PASSWORD, 1000)}"\n')
    with pytest.raises(ConfigError, match="not valid TOML"):
        Accounts.from_toml("[users.eve\n")
    with pytest.raises(ConfigError, match="empty"):
        Accounts.from_toml("")
    with pytest.raises(ConfigError, match="shorter than 8"):
        hash_password("short")


def test_every_event_declares_its_role_where_it_is_wired(app) -> None:
    ui, _ = app
    events = {i: f for i, f in ui.blocks.fns.items() if f.fn is not None}  # gr.api, .then and .success included
    undeclared = [handler_name(f.fn) for f in events.values() if role_of(f) not in (PUBLIC, ANNOTATOR, ADMIN)]
    assert undeclared == [] and ui.roles == {i: role_of(f) for i, f in events.items()}
    endpoints = {f.api_name: role_of(f) for f in events.values() if f.api_name in API_NAMES}
    assert endpoints == {name: ANNOTATOR if name in ("next_pair", "vote", "undo", "chat", "eval_next",
                                                           "eval_vote", "leaderboard", "rate_reply") else ADMIN
                         for name in API_NAMES}
    chained = [f for f in events.values() if any(event in ("then", "success") for _, event in f.targets)]
    assert len(chained) >= 5 and all(role_of(f) for f in chained)
    by_handler = {handler_name(f.fn): role_of(f) for f in events.values()}
    for name in ("DataTab.on_export", "TrainTab.on_start", "TrainTab.on_cancel", "DataTab.on_add_prompts",
                 "LabelTab.on_sampling", "ChatTab.on_generator", "ChatTab.on_pick_aligned", "Header.on_backup",
                 "DataTab.on_refresh", "TrainTab.on_poll", "TrainTab.on_merge", "QualityTab.on_refresh"):
        assert by_handler[name] == ADMIN, name
    for name in ("LabelTab.on_vote", "LabelTab.on_next_pair", "LabelTab.on_undo", "ChatTab.on_chat"):
        assert by_handler[name] == ANNOTATOR, name
    # Every event in an admin tab needs an admin, whatever its handler is called.
    for f in events.values():
        blocks = [ui.blocks.blocks.get(target) for target, _ in f.targets if target is not None]
        if blocks and all(_inside(b, (ui.data.tab, ui.train.tab, ui.quality.tab)) for b in blocks):
            assert role_of(f) == ADMIN, handler_name(f.fn)
    # every Python event is guarded, but the one that says who is signed in
    assert [handler_name(f.fn) for f in events.values() if not hasattr(f.fn, "__wrapped__")] == ["PrefUI.on_signed_in"]


def _inside(block, tabs) -> bool:
    while block is not None:
        if any(block is tab for tab in tabs):
            return True
        block = getattr(block, "parent", None)
    return False


def test_an_event_without_a_declared_role_is_refused_to_everyone(users_toml: str) -> None:
    import gradio as gr

    def forgotten_api(text: str) -> str:
        return "ran"

    def build() -> gr.Blocks:
        with gr.Blocks() as blocks:
            box, out, button = gr.Textbox(), gr.Textbox(), gr.Button()
            on(button.click, lambda text: "ran", box, out, role=ANNOTATOR, api_name="declared")
            button.click(lambda text: "ran", box, out, api_name="undeclared")  # wired without a role
            gr.api(forgotten_api, api_name="forgotten")
            dependency = on(box.submit, lambda text: "ran", box, out, role=ADMIN, api_name="declared_admin")
            dependency.then(lambda text: "ran", box, out, api_name="undeclared_then")
        return blocks

    for accounts in (None, Accounts.from_toml(users_toml)):
        blocks = build()
        roles = guard_events(blocks, accounts)
        assert sorted(map(str, roles.values())) == ["None", "None", "None", "admin", "annotator"]
        auth = dict(auth=accounts.check) if accounts else {}
        with served(blocks, **auth) as url:
            client = Client(url, auth=("boss", PASSWORD) if accounts else None, verbose=False)
            assert client.predict("x", api_name="/declared") == "ran"
            assert client.predict("x", api_name="/declared_admin") == "ran"
            for endpoint in ("/undeclared", "/forgotten", "/undeclared_then"):  # refused even to an admin
                with pytest.raises(AppError, match="declares no role, so it is refused to everyone"):
                    client.predict("x", api_name=endpoint)


def test_annotator_cannot_reach_admin_api_and_cannot_forge_the_annotator(app, service: PrefService) -> None:
    _, url = app
    ann = Client(url, auth=("ann", PASSWORD), verbose=False)
    pair_id, _, _, _ = ann.predict("boss", api_name="/next_pair")  # claims to be boss
    assert service.store.get_pair(pair_id).served_to == "ann"
    assert ann.predict(pair_id, "A", "boss", api_name="/vote").startswith("Recorded: A is better")
    assert [(v.pair_id, v.annotator) for v in service.store.votes()] == [(pair_id, "ann")]
    for endpoint, args in ADMIN_ONLY_API.items():
        with pytest.raises(AppError, match="needs the admin role"):
            ann.predict(*args, api_name=endpoint)
    assert not service.config.exports_dir.exists() and service.rounds() == []

    boss = Client(url, auth=("boss", PASSWORD), verbose=False)
    assert boss.predict("", "", api_name="/export").startswith("Exported 1 pairs")
    with pytest.raises(Exception):  # no account, no app
        Client(url, verbose=False)
    with pytest.raises(Exception):
        Client(url, auth=("ann", "wrong password"), verbose=False)


def _call_event(http: httpx.Client, url: str, fn_index: int, data: list) -> dict:
    """Call one UI event the way the browser does (queue/join, then the event stream); return its final message."""
    session = uuid.uuid4().hex
    joined = http.post(f"{url}gradio_api/queue/join", json={"data": data, "fn_index": fn_index, "event_data": None,
                                                           "trigger_id": None, "session_hash": session})
    joined.raise_for_status()
    with http.stream("GET", f"{url}gradio_api/queue/data", params={"session_hash": session}) as stream:
        for line in stream.iter_lines():
            if line.startswith("data:"):
                message = json.loads(line[5:])
                if message.get("msg") == "process_completed":
                    return message
    raise AssertionError("the event stream ended without a result")


def test_a_hidden_ui_event_called_directly_is_refused_to_an_annotator(app, service: PrefService) -> None:
    ui, url = app
    export_index = next(i for i, f in ui.blocks.fns.items() if f.fn and handler_name(f.fn) == "DataTab.on_export")
    defaults = ["" if c.value is None else c.value for c in ui.blocks.fns[export_index].inputs[1:]]  # as first shown
    with httpx.Client(timeout=60) as http:
        http.post(f"{url}login", data={"username": "ann", "password": PASSWORD}).raise_for_status()
        refused = _call_event(http, url, export_index, ["stolen", *defaults])
    assert refused["success"] is False and "needs the admin role" in json.dumps(refused)
    assert not (service.config.exports_dir / "stolen").exists()
    poll_index = next(i for i, f in ui.blocks.fns.items() if f.fn and handler_name(f.fn) == "TrainTab.on_poll")
    with httpx.Client(timeout=60) as http:  # a timer tick an annotator's page may still send: answered quietly
        http.post(f"{url}login", data={"username": "ann", "password": PASSWORD}).raise_for_status()
        tick = _call_event(http, url, poll_index, [])
    updates = tick["output"]["data"]
    assert tick["success"] is True and all(d.get("__type__") == "update" and "value" not in d for d in updates)
    pair = service.next_pair("ann")  # the same call by an admin goes through: the refusal was the role's
    service.vote(pair.pair_id, "A", "ann")
    with httpx.Client(timeout=60) as http:
        http.post(f"{url}login", data={"username": "boss", "password": PASSWORD}).raise_for_status()
        allowed = _call_event(http, url, export_index, ["by-boss", *defaults])
    assert allowed["success"] is True and (service.config.exports_dir / "by-boss").is_dir()




def test_an_annotator_in_the_browser_labels_as_themself_and_sees_no_admin_tabs(
    app, service: PrefService, chromium_installed: None
) -> None:
    import playwright.sync_api as playwright_api
    expect = playwright_api.expect
    _, url = app
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(url)
        page.get_by_label("username").fill("ann")
        page.get_by_label("password").fill(PASSWORD)
        page.get_by_role("button", name="Login").click()
        expect(page.get_by_label("Access")).to_have_value("Signed in as ann (annotator).")
        expect(page.get_by_label("Your name (annotator)")).to_have_value("ann")
        expect(page.get_by_label("Your name (annotator)")).to_be_disabled()
        pair_box = page.locator("#pair-id textarea")
        expect(pair_box).not_to_have_value("", timeout=FIRST_PAIR_MS)  # came without typing a name
        pair_id = pair_box.input_value()
        expect(page.get_by_role("tab", name="Label")).to_be_visible()
        for tab in ("Data", "Train", "Quality"):  # disabled, and so taken off the tab bar
            admin_tab = page.get_by_role("tab", name=tab, include_hidden=True)
            expect(admin_tab).to_be_disabled()
            expect(admin_tab).to_be_hidden()
        expect(page.get_by_role("tab", name="Chat")).to_be_enabled()
        expect(page.get_by_role("button", name="Apply sampling")).to_have_count(0)
        page.get_by_role("button", name="B is better").click()
        expect(page.get_by_label("Your votes")).to_have_value("1")
    assert [(v.pair_id, v.choice, v.annotator) for v in service.store.votes()] == [(pair_id, "B", "ann")]


def test_add_user_from_the_command_line(tmp_path) -> None:
    import subprocess
    import sys

    users = tmp_path / "users.toml"
    run = subprocess.run([sys.executable, "-m", "prefapp.cli", "add-user", "carol", "--role", "admin",
                          "--users-file", str(users)], input=PASSWORD + "\n", capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr
    assert PASSWORD not in users.read_text() and Accounts.from_toml(users.read_text()).check("carol", PASSWORD)
    short = subprocess.run([sys.executable, "-m", "prefapp.cli", "add-user", "dan", "--users-file", str(users)],
                           input="short\n", capture_output=True, text=True, timeout=120)
    assert short.returncode == 2 and "shorter than 8 characters" in short.stderr


def test_uploads_need_an_admin_and_stay_under_the_size_limit(app, monkeypatch) -> None:
    _, url = app
    small = {"files": ("prompts.txt", b"What is 2 + 2?\n", "text/plain")}
    with httpx.Client(base_url=url, timeout=60) as visitor:
        assert visitor.post("gradio_api/upload", files=small).status_code == 401
    for name, expected in (("ann", 403), ("boss", 200)):
        with httpx.Client(base_url=url, timeout=60) as http:
            assert http.post("login", data={"username": name, "password": PASSWORD}).status_code == 200
            answer = http.post("gradio_api/upload", files=small)
            assert answer.status_code == expected, answer.text
            if name == "boss":  # 50 MiB by default (PREFAPP_MAX_UPLOAD_MB): 60 MiB is refused
                big = {"files": ("big.txt", b"x" * (60 * 1024 * 1024), "text/plain")}
                assert http.post("gradio_api/upload", files=big).status_code in (400, 413)


def test_the_page_config_carries_no_admin_data_and_an_admin_page_load_fills_it(service: PrefService,
                                                                               users_toml: str) -> None:
    round_id = service.store.start_round("demo", {"beta": 0.1}, "/data/exports/secret-export", 3)
    service.store.finish_round(round_id, "/data/adapters/secret-adapter-path", {"loss": 0.5})
    accounts = Accounts.from_toml(users_toml)
    ui = PrefUI(service, accounts)
    with served(ui.blocks, **launch_options(accounts)) as url:
        with httpx.Client(base_url=url, timeout=60) as http:
            assert http.post("login", data={"username": "ann", "password": PASSWORD}).status_code == 200
            config = http.get("config")
            assert config.status_code == 200 and "Rounds" in config.text
            assert "secret-adapter-path" not in config.text and "secret" not in http.get("").text
    update = ui.train.on_load()  # what an admin's page load sends (the event needs the admin role)
    assert "/data/adapters/secret-adapter-path" in update[ui.train.rounds_table]["adapter"].tolist()
    assert ui.roles[next(i for i, f in ui.blocks.fns.items() if f.fn is not None
                         and "TrainTab.on_load" in handler_name(f.fn))] == "admin"
