"""Platform configuration from INTEROP_* variables, `.env` and an optional `interop.toml`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr
from pydantic_settings import (
    BaseSettings,
    DotEnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from db.errors import InteropError

DEFAULT_DATABASE_FILE = "interop.db"


def _toml_file() -> Path:
    """The `interop.toml` to read; `INTEROP_CONFIG` names another one."""
    return Path(os.environ.get("INTEROP_CONFIG", "interop.toml"))


def _state_dir() -> Path:
    """The state dir before the settings exist (their own sources depend on it): environment, then interop.toml."""
    if os.environ.get("INTEROP_STATE_DIR"):
        return Path(os.environ["INTEROP_STATE_DIR"])
    path = _toml_file()
    if path.exists():
        import tomllib

        try:
            with path.open("rb") as fh:
                value = tomllib.load(fh).get("state_dir")
        except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
            value = None  # get_settings reports a broken interop.toml itself
        if isinstance(value, str) and value:
            return Path(value)
    return Path(".interop")


class Settings(BaseSettings):
    """Everything the platform reads from its environment; secrets stay SecretStr so they never print."""

    model_config = SettingsConfigDict(
        env_prefix="INTEROP_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
    )

    database_url: str = Field(
        default_factory=lambda: f"sqlite:///{Path.cwd() / DEFAULT_DATABASE_FILE}",
        description="SQLAlchemy URL of the store; SQLite file in the working directory by default.",
    )
    reader_database_url: str | None = Field(
        None,
        description="URL of a read-only PostgreSQL role for the SQL console and `export query` "
        "(`interop db create-reader` makes one); not needed on SQLite.",
    )
    sqlite_busy_timeout_ms: int = Field(30_000, description="How long SQLite waits for a lock.")
    github_token: SecretStr | None = Field(None, description="GitHub token(s), comma-separated.")
    github_base_url: str = Field("https://api.github.com", description="GitHub API base URL.")
    github_min_request_interval: float = Field(0.25, description="Seconds between GitHub requests (0: none).")
    github_api: str = Field("auto", description="API of `mine github`: auto (graphql with a token), graphql, rest.")
    github_max_wait: float = Field(3600.0, description="Longest a GitHub request may wait/retry before giving up.")
    label_studio_url: str = Field("http://127.0.0.1:8080", description="Label Studio server URL.")
    label_studio_api_key: SecretStr | None = Field(None, description="Label Studio API token.")
    label_studio_venv: Path = Field(
        Path(".venv-labelstudio"), description="The venv `make labelstudio` installs the Label Studio server into."
    )
    state_dir: Path = Field(
        Path(".interop"),
        description="The platform's local state: `interop labelstudio start` keeps its server's data, PID file and "
        "credentials (labelstudio.env, mode 600, read as settings) here.",
    )
    data_dir: Path = Field(Path("artifacts"), description="Where campaigns keep model files.")
    app_users_file: Path = Field(
        Path("app-users.json"), description="The app's built-in users (`interop app users add`): salted hashes."
    )
    app_lockout_attempts: int = Field(5, ge=1, description="Failed sign-ins that lock a user name out.")
    app_lockout_seconds: float = Field(900.0, gt=0, description="How long a lockout lasts (and its counting window).")
    app_allowed_emails: str | None = Field(
        None, description="OIDC sign-in: comma-separated addresses or @domains let in (default: every signed-in user)."
    )
    app_signin: Literal["auto", "required"] = Field(
        "auto",
        description="`required`: the app asks everyone to sign in; `auto`: only when bound beyond localhost "
        "(`interop app` sets it for such addresses).",
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Precedence: arguments > environment > .env > the credentials `interop labelstudio start` stored >
        top-level keys of interop.toml."""
        toml = TomlConfigSettingsSource(settings_cls, toml_file=_toml_file())
        started = DotEnvSettingsSource(settings_cls, env_file=_state_dir() / "labelstudio.env")
        return (init_settings, env_settings, dotenv_settings, started, toml, file_secret_settings)


class ConfigError(InteropError):
    """A configuration problem the user must fix, told in one line that names the file or variable."""


def get_settings(**overrides: Any) -> Settings:
    """Fresh settings each call so tests and the CLI see the current environment."""
    path = _toml_file()
    if path.exists() or "INTEROP_CONFIG" in os.environ:
        unknown = sorted(
            k for k, v in load_toml().items() if not isinstance(v, dict | list) and k not in Settings.model_fields
        )
        if unknown:
            raise ConfigError(
                f"{path}: unknown setting {', '.join(map(repr, unknown))} (known: "
                f"{', '.join(sorted(Settings.model_fields))})"
            )
    return Settings(**overrides)


def load_toml() -> dict[str, Any]:
    """The whole `interop.toml` (miners, schedules, campaigns read their own tables from it)."""
    import tomllib

    path = _toml_file()
    if not path.exists():
        if "INTEROP_CONFIG" in os.environ:
            raise ConfigError(f"INTEROP_CONFIG names {path}, which does not exist")
        return {}
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from exc
