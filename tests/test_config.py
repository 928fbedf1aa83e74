"""Configuration precedence: INTEROP_* environment > .env > interop.toml > defaults."""

from __future__ import annotations

from pathlib import Path

from db.config import get_settings, load_toml


def test_default_database_is_a_sqlite_file_in_the_working_directory(monkeypatch, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("INTEROP_DATABASE_URL", raising=False)
    assert get_settings().database_url == f"sqlite:///{tmp_path / 'interop.db'}"


def test_toml_then_dotenv_then_environment_override_each_other(monkeypatch, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("INTEROP_DATABASE_URL", raising=False)
    toml = tmp_path / "interop.toml"
    toml.write_text('database_url = "sqlite:///from-toml.db"\n[[miners.github]]\nrepo = "onnx/tensorflow-onnx"\n')
    monkeypatch.setenv("INTEROP_CONFIG", str(toml))
    assert get_settings().database_url == "sqlite:///from-toml.db"
    assert load_toml()["miners"]["github"][0]["repo"] == "onnx/tensorflow-onnx"
    (tmp_path / ".env").write_text("INTEROP_DATABASE_URL=sqlite:///from-dotenv.db\n")
    assert get_settings().database_url == "sqlite:///from-dotenv.db"
    monkeypatch.setenv("INTEROP_DATABASE_URL", "sqlite:///from-env.db")
    assert get_settings().database_url == "sqlite:///from-env.db"


def test_secrets_never_print(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("INTEROP_GITHUB_TOKEN", "ghp_notarealtoken")
    settings = get_settings()
    assert "ghp_notarealtoken" not in repr(settings) and "ghp_notarealtoken" not in str(settings)
    assert settings.github_token is not None
    assert settings.github_token.get_secret_value() == "ghp_notarealtoken"
