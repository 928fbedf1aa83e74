"""Credentials in URLs (userinfo, secret query parameters) are masked by one function wherever a URL is shown
or stored: `interop info`, database errors, Label Studio and GitHub errors, ingest_run rows."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.engine import make_url
from sqlmodel import Session, select

from db.masking import mask_text, mask_url
from tests.test_cli_errors import assert_one_error_line, run

SECRET = "s3cr3t-value"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://alice:s3cr3t-value@db:5432/lab", "postgresql://alice:***@db:5432/lab"),
        ("postgresql+psycopg://alice@db/lab?password=s3cr3t-value", "postgresql+psycopg://alice@db/lab?password=***"),
        (
            "postgresql://u@db/lab?sslmode=require&sslpassword=s3cr3t-value&application_name=x",
            "postgresql://u@db/lab?sslmode=require&sslpassword=***&application_name=x",
        ),
        # SQLAlchemy accepts unescaped / ? # in a password: the whole password goes, not the part before them
        ("postgresql://u:s3cr/et?v#alue@db/lab", "postgresql://u:***@db/lab"),
        ("http://coder:s3cr3t-value@ls.lab:8080", "http://coder:***@ls.lab:8080"),
        ("https://s3cr3t-value@api.github.com/", "https://***@api.github.com/"),  # a token as the user
        ("https://h/api/v3?access_token=s3cr3t-value&per_page=5", "https://h/api/v3?access_token=***&per_page=5"),
        ("http://h/x?api_key=s3cr3t-value&Token=s3cr3t-value#top", "http://h/x?api_key=***&Token=***#top"),
        ("http://h:8080/issues?creator=a@b.org", "http://h:8080/issues?creator=a@b.org"),  # no userinfo there
        ("postgresql://u:s3cr3t-value@db:port/lab", "postgresql://u:***@db:port/lab"),  # unparseable, still masked
        ("sqlite:////tmp/interop.db", "sqlite:////tmp/interop.db"),
        ("notaurl", "notaurl"),
    ],
)
def test_mask_url_hides_every_credential_form(url: str, shown: str) -> None:
    assert mask_url(url) == shown
    assert SECRET not in mask_text(f"error: cannot use {url!r} (host=db password=s3cr3t-value)")


def test_mask_url_takes_sqlalchemy_urls_and_keeps_them_usable() -> None:
    url = make_url("postgresql+psycopg://alice:s3cr3t-value@db/lab?password=s3cr3t-value")
    assert mask_url(url) == "postgresql+psycopg://alice:***@db/lab?password=***"
    assert url.password == SECRET  # the URL object itself is untouched


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+psycopg://alice@127.0.0.1:1/lab?password=s3cr3t-value",
        "postgresql://alice:s3cr3t-value@127.0.0.1:1/lab?sslpassword=s3cr3t-value",
    ],
)
def test_info_and_unreachable_database_errors_mask_the_url(url: str, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    code, output = run(["info"], tmp_path, monkeypatch, INTEROP_DATABASE_URL=url)
    assert code == 0 and SECRET not in output and "alice" in output and "***" in output
    code, output = run(["db", "upgrade"], tmp_path, monkeypatch, INTEROP_DATABASE_URL=url)
    assert code == 2 and SECRET not in output
    assert_one_error_line(output, "cannot reach the database", "***")
    code, output = run(["survey", "list"], tmp_path, monkeypatch, INTEROP_DATABASE_URL=url)
    assert code == 2 and SECRET not in output
    assert_one_error_line(output, "database error")


@pytest.mark.parametrize("command", [["info"], ["survey", "list"], ["db", "upgrade"], ["db", "current"]])
def test_a_non_numeric_port_is_one_error_line(command: list[str], tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    url = "postgresql://alice:s3cr3t-value@127.0.0.1:54x2/lab"
    code, output = run(command, tmp_path, monkeypatch, INTEROP_DATABASE_URL=url)
    assert code == 2
    assert_one_error_line(output, "port '54x2' is not a number", "postgresql://alice:***@127.0.0.1:54x2/lab")
    assert SECRET not in output


@pytest.mark.parametrize(
    "ls_url",
    ["http://coder:s3cr3t-value@127.0.0.1:1", "http://127.0.0.1:1/?token=s3cr3t-value"],
)
def test_label_studio_errors_mask_credentials_in_its_url(ls_url: str, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    assert run(["db", "upgrade"], tmp_path, monkeypatch)[0] == 0
    code, output = run(
        ["label", "pull"],
        tmp_path,
        monkeypatch,
        INTEROP_LABEL_STUDIO_URL=ls_url,
        INTEROP_LABEL_STUDIO_API_KEY="k",
    )
    assert code == 2 and SECRET not in output
    assert_one_error_line(output, "cannot reach Label Studio at http://", "***")


def test_github_base_url_credentials_are_masked_in_output_and_in_the_ingest_run(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from db.engine import make_engine
    from db.models.ingest import IngestRun

    assert run(["db", "upgrade"], tmp_path, monkeypatch)[0] == 0
    base = "http://miner:s3cr3t-value@127.0.0.1:1/api/v3?access_token=s3cr3t-value"
    code, output = run(
        ["mine", "github", "--repo", "acme/conv", "--base-url", base],
        tmp_path,
        monkeypatch,
        INTEROP_GITHUB_MAX_WAIT="0.5",
        INTEROP_GITHUB_MIN_REQUEST_INTERVAL="0",
    )
    assert code == 2 and SECRET not in output
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    with Session(engine) as session:
        rows = session.exec(select(IngestRun)).all()
    engine.dispose()
    assert rows and all(r.status == "failed" for r in rows)
    for row in rows:
        assert SECRET not in str(row.parameters) and SECRET not in (row.error or "")
        assert row.parameters["base_url"] == "http://miner:***@127.0.0.1:1/api/v3?access_token=***"


def test_failed_runs_store_their_error_masked(tmp_path: Path) -> None:
    from db.engine import make_engine
    from db.ingest import recorded_run
    from db.migrate import upgrade
    from db.models.ingest import IngestRun

    url = f"sqlite:///{tmp_path / 'runs.db'}"
    upgrade(url)
    engine = make_engine(url)
    with pytest.raises(RuntimeError), recorded_run(engine, "t", {"server": "http://u:s3cr3t-value@h"}):
        raise RuntimeError("cannot reach http://h/?token=s3cr3t-value (password=s3cr3t-value)")
    with Session(engine) as session:
        row = session.exec(select(IngestRun)).one()
    engine.dispose()
    assert row.status == "failed" and SECRET not in (row.error or "")
    assert "cannot reach http://h/?token=*** (password=***)" in (row.error or "")
    assert row.parameters == {"server": "http://u:***@h"}
