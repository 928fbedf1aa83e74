"""The protected app: served beyond localhost it shows only a sign-in; built-in users (salted scrypt hashes,
constant-time checks, lockout) managed by `interop app users`; OIDC offered when secrets.toml configures it;
`interop app --address 0.0.0.0` refuses without either."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.support.apptest import APP, texts

PASSWORD = "correct horse battery"


@pytest.fixture
def users(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An isolated users file (and no secrets.toml: HOME and the working directory are empty temp dirs)."""
    path = tmp_path / "users" / "app-users.json"
    monkeypatch.setenv("INTEROP_APP_USERS_FILE", str(path))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    return path


def _cli(*args: str, input: str | None = None):  # type: ignore[no-untyped-def]
    from typer.testing import CliRunner

    from cli.main import app

    return CliRunner().invoke(app, list(args), input=input, catch_exceptions=False)


# --- passwords and the users file ----------------------------------------------------------------------


def test_hashes_are_salted_scrypt_and_only_the_right_password_matches() -> None:
    from explorer.access import hash_password, verify_password

    one, two = hash_password(PASSWORD), hash_password(PASSWORD)
    assert one != two and one.startswith("scrypt$16384$8$1$") and PASSWORD not in one
    assert verify_password(PASSWORD, one) and verify_password(PASSWORD, two)
    assert not verify_password(PASSWORD + "!", one)
    assert not verify_password(PASSWORD, "scrypt$1$2$3$not base64$x") and not verify_password(PASSWORD, "")


def test_users_add_list_remove_never_show_or_store_the_password(users: Path) -> None:
    added = _cli("app", "users", "add", "alice", "--password-stdin", input=PASSWORD + "\n")
    assert added.exit_code == 0 and added.output.strip() == f"user alice added to {users}"
    assert PASSWORD not in users.read_text() and oct(users.stat().st_mode & 0o777) == "0o600"
    again = _cli("app", "users", "add", "alice", "--password-stdin", input="another one\n")
    assert again.exit_code == 2 and "pass --replace" in again.output
    assert _cli("app", "users", "add", "alice", "--replace", "--password-stdin", input="another one\n").exit_code == 0
    short = _cli("app", "users", "add", "bob", "--password-stdin", input="short\n")
    assert short.exit_code == 2 and short.output.strip() == "error: the password must have at least 8 characters"
    bad = _cli("app", "users", "add", "bob smith", "--password-stdin", input=PASSWORD + "\n")
    assert bad.exit_code == 2 and "user name 'bob smith'" in bad.output
    no_tty = _cli("app", "users", "add", "bob", input=PASSWORD + "\n")  # CliRunner's stdin is no terminal
    assert no_tty.exit_code == 2 and "--password-stdin" in no_tty.output
    assert _cli("app", "users", "list").output.split() == ["alice"]
    for result in (added, again, short, bad, no_tty):
        assert PASSWORD not in result.output and "another one" not in result.output
    assert _cli("app", "users", "remove", "alice").exit_code == 0
    gone = _cli("app", "users", "remove", "alice")
    assert gone.exit_code == 2 and gone.output.strip() == f"error: no user 'alice' in {users}"


def test_app_beyond_localhost_refuses_without_sign_in_set_up(users: Path, tmp_path: Path) -> None:
    refused = _cli("app", "--address", "0.0.0.0", "--port", "1")
    lines = refused.output.strip().splitlines()
    assert refused.exit_code == 2 and len(lines) == 1
    assert lines[0].startswith("error: --address 0.0.0.0 serves other machines, so the app needs sign-in: ")
    assert "interop app users add NAME" in lines[0] and ".streamlit/secrets.toml" in lines[0]
    # with OIDC configured in the project's secrets.toml it goes on (here to the next check: the port)
    secrets = tmp_path / ".streamlit" / "secrets.toml"
    secrets.parent.mkdir()
    secrets.write_text(
        '[auth]\nredirect_uri = "http://h:8501/oauth2callback"\ncookie_secret = "x"\nclient_id = "c"\n'
        'client_secret = "s"\nserver_metadata_url = "https://idp/.well-known/openid-configuration"\n'
    )
    from explorer.access import oidc_configured

    assert oidc_configured()
    secrets.unlink()
    _cli("app", "users", "add", "alice", "--password-stdin", input=PASSWORD + "\n")
    from explorer.access import is_loopback

    assert is_loopback("localhost") and is_loopback("127.0.0.1") and is_loopback("::1")
    assert not is_loopback("0.0.0.0") and not is_loopback("") and not is_loopback("10.1.2.3")


# --- the app (AppTest) ---------------------------------------------------------------------------------


@pytest.fixture
def protected(configured_reader: str, users: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The app as `interop app --address 0.0.0.0` starts it (sign-in required), with user alice."""
    from explorer.access import add_user

    monkeypatch.setenv("INTEROP_APP_SIGNIN", "required")
    monkeypatch.setenv("INTEROP_APP_LOCKOUT_ATTEMPTS", "3")
    add_user("alice", PASSWORD)
    yield users


def _start() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _sign_in(at: AppTest, name: str, password: str) -> AppTest:
    at.text_input(key="signin_name").input(name)
    at.text_input(key="signin_password").input(password)
    next(b for b in at.button if b.label == "Sign in").click()
    return at.run()


def _signed_out(at: AppTest) -> bool:
    return "sign in to continue" in texts(at) and not any(b.label == "Run" for b in at.button)


def test_no_page_is_reachable_signed_out(protected: Path) -> None:
    at = _start()
    assert _signed_out(at) and [t.value for t in at.title] == ["Interop Lab"]
    for page in ("sql", "overview", "issues", "experiments"):
        at.switch_page(f"explorer/pages/{page}.py").run()
        assert not at.exception and _signed_out(at), page
        assert not at.dataframe and not at.metric  # nothing of the data shows
        assert "SQL" not in [t.value for t in at.title]


def test_a_wrong_password_fails_and_the_right_one_opens_the_sql_page(protected: Path) -> None:
    at = _sign_in(_start(), "alice", "wrong password")
    assert _signed_out(at) and [e.value for e in at.error] == ["Wrong user name or password."]
    at = _sign_in(at, "mallory", PASSWORD)  # an unknown name gets the same answer
    assert [e.value for e in at.error] == ["Wrong user name or password."]
    at = _sign_in(at, "alice", PASSWORD)
    assert not at.exception and "Signed in as **alice**" in [c.value for c in at.sidebar.caption]
    at.switch_page("explorer/pages/sql.py").run()
    assert not at.exception and [t.value for t in at.title] == ["SQL"]
    assert any(b.label == "Run" and not b.disabled for b in at.button)
    assert PASSWORD not in repr(at.session_state)  # the form was cleared on submit
    next(b for b in at.sidebar.button if b.label == "Sign out").click()
    assert _signed_out(at.run())


def test_repeated_failures_lock_the_name_out_even_for_the_right_password(protected: Path) -> None:
    at = _start()
    for _ in range(2):
        at = _sign_in(at, "alice", "wrong password")
        assert [e.value for e in at.error] == ["Wrong user name or password."]
    at = _sign_in(at, "alice", "wrong password")  # the third failure (INTEROP_APP_LOCKOUT_ATTEMPTS=3)
    assert at.error[0].value.startswith("Too many failed sign-ins for this name: try again in 15 min")
    at = _sign_in(at, "alice", PASSWORD)
    assert _signed_out(at) and at.error[0].value.startswith("Too many failed sign-ins")
    # a fresh session (another browser) is locked out too: the count lives beside the users file
    assert _signed_out(_sign_in(_start(), "alice", PASSWORD))
    # setting a new password lifts the lockout
    _cli("app", "users", "add", "alice", "--replace", "--password-stdin", input=PASSWORD + "\n")
    assert not _signed_out(_sign_in(_start(), "alice", PASSWORD))


def test_without_any_sign_in_set_up_the_app_says_how(configured_db: str, users: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("INTEROP_APP_SIGNIN", "required")
    at = _start()
    assert at.error and "needs sign-in but none is set up" in at.error[0].value
    assert "interop app users add NAME" in at.error[0].value and not at.text_input


def test_oidc_from_secrets_offers_its_sign_in(protected: Path) -> None:
    at = AppTest.from_file(APP, default_timeout=60)
    at.secrets["auth"] = {
        "redirect_uri": "http://localhost:8501/oauth2callback",
        "cookie_secret": "a-long-random-secret-for-the-cookie",
        "lab": {
            "client_id": "interop",
            "client_secret": "s3cret",
            "server_metadata_url": "https://idp.example/.well-known/openid-configuration",
        },
    }
    at.run()
    assert not at.exception and "Sign in with lab" in [b.label for b in at.button]
    assert _signed_out(at)  # and the built-in form is still there for the users of the file
    assert at.text_input(key="signin_password")


def test_localhost_needs_no_sign_in(configured_reader: str, users: Path) -> None:
    os.environ.pop("INTEROP_APP_SIGNIN", None)
    at = _start()
    assert "sign in to continue" not in texts(at) and at.metric


# --- the browser -----------------------------------------------------------------------------------------


def _type(browser, label: str, text: str) -> None:  # type: ignore[no-untyped-def]
    """Focus the input labelled LABEL and type TEXT into it, as a person would."""
    found = browser.evaluate(
        f"(() => {{ const i = document.querySelector('input[aria-label={json.dumps(label)}]');"
        " if (i) { i.focus(); i.select(); } return !!i; })()"
    )
    assert found, f"no input labelled {label}"
    browser.call("Input.insertText", text=text)


def test_browser_sign_in_guards_the_sql_page(  # type: ignore[no-untyped-def]
    configured_reader: str, backend: str, db_url: str, reader_url: str, users: Path, tmp_path: Path
) -> None:
    from tests.support.browser import CHROMIUM, Chromium, StreamlitServer, click_and_wait, wait_for_page
    from tests.support.services import skip_or_fail

    if not CHROMIUM.exists():
        skip_or_fail("headless Chromium is missing: apt-get install -y chromium chromium-driver")
    from explorer.access import add_user

    add_user("alice", PASSWORD)
    env = {
        "INTEROP_DATABASE_URL": db_url,
        "INTEROP_APP_SIGNIN": "required",  # what `interop app --address 0.0.0.0` sets
        "INTEROP_APP_USERS_FILE": str(users),
        "INTEROP_APP_LOCKOUT_ATTEMPTS": "2",
    }
    if backend == "postgresql":
        env["INTEROP_READER_DATABASE_URL"] = reader_url
    server = StreamlitServer(Path(APP), env, tmp_path / "streamlit.log")
    browser = Chromium()
    try:
        server.wait()
        browser.connect()
        browser.navigate(f"{server.url}/sql?sql=SELECT%201")
        state = wait_for_page(browser, "Interop Lab")
        assert "sign in to continue" in state["text"] and "Row cap" not in state["text"], state["text"]
        assert not state["exceptions"] and state["dataframes"] == 0

        _type(browser, "User name", "alice")
        _type(browser, "Password", "wrong password")
        state = click_and_wait(browser, "Sign in", "Wrong user name or password.")
        assert "Row cap" not in state["text"]

        _type(browser, "User name", "alice")
        _type(browser, "Password", PASSWORD)
        state = click_and_wait(browser, "Sign in", "Row cap")  # straight on to the page that was asked for
        assert state["title"].startswith("SQL") and not state["exceptions"]
        browser.screenshot(tmp_path / "signed-in.png")

        # a second browser session: two failures lock the name out, then even the right password fails
        browser.navigate(f"{server.url}/sql")
        wait_for_page(browser, "Interop Lab")
        for shows in ("Wrong user name or password.", "Too many failed sign-ins"):
            _type(browser, "User name", "alice")
            _type(browser, "Password", "wrong password")
            click_and_wait(browser, "Sign in", shows)
        _type(browser, "User name", "alice")
        _type(browser, "Password", PASSWORD)
        state = click_and_wait(browser, "Sign in", "Too many failed sign-ins")
        assert "Row cap" not in state["text"]
    finally:
        browser.close()
        server.stop()
