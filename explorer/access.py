"""Who may use the app when it is served beyond localhost: built-in users (salted scrypt hashes in a file, with a
lockout after repeated failures) or Streamlit's OIDC sign-in configured in `.streamlit/secrets.toml`.

No Streamlit here: `interop app users add|remove` and the app's sign-in form share these functions. A password
is only ever hashed and compared (constant time); it is never printed, logged or stored.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import os
import re
import secrets
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from db.errors import InteropError

#: scrypt cost (RFC 7914): 2^14 × 8 × 128 B = 16 MiB and ~50 ms per check, the interactive-login setting.
SCRYPT_N, SCRYPT_R, SCRYPT_P, KEY_BYTES = 2**14, 8, 1, 32
MIN_PASSWORD_LENGTH = 8
USERNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
SIGNIN_ENV = "INTEROP_APP_SIGNIN"
SETUP_HELP = (
    "add a user with `interop app users add NAME` (the built-in sign-in), or configure OIDC sign-in in "
    ".streamlit/secrets.toml ([auth]: redirect_uri, cookie_secret, client_id, client_secret, server_metadata_url)"
)

__all__ = [
    "AccessError",
    "Lockout",
    "SignIn",
    "add_user",
    "hash_password",
    "is_loopback",
    "list_users",
    "oidc_configured",
    "remove_user",
    "users_file",
    "verify_password",
]


class AccessError(InteropError):
    """A user-management request that cannot be done (bad name, short password, unknown user, broken file)."""


# --- passwords -----------------------------------------------------------------------------------------


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def hash_password(password: str, salt: bytes | None = None) -> str:
    """`scrypt$N$r$p$salt$key` with a fresh 16-byte salt: what the users file stores instead of the password."""
    salt = salt if salt is not None else secrets.token_bytes(16)
    key = hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=KEY_BYTES, maxmem=64 << 20
    )
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(key)}"


def verify_password(password: str, stored: str) -> bool:
    """Whether PASSWORD hashes to STORED, compared in constant time; a malformed entry never matches."""
    try:
        scheme, n, r, p, salt, key = stored.split("$")
        expected = base64.b64decode(key, validate=True)
        got = hashlib.scrypt(
            password.encode("utf-8"),
            salt=base64.b64decode(salt, validate=True),
            n=int(n),
            r=int(r),
            p=int(p),
            dklen=len(expected),
            maxmem=64 << 20,
        )
    except (ValueError, TypeError):
        return False
    return scheme == "scrypt" and hmac.compare_digest(got, expected)


#: Compared against when the name is unknown, so a wrong name costs the same time as a wrong password.
_DUMMY = hash_password("not a password of anyone", salt=b"interop-dummy-salt")


# --- the users file ------------------------------------------------------------------------------------


def users_file() -> Path:
    """INTEROP_APP_USERS_FILE (settings), else `app-users.json` in the working directory."""
    from db.config import get_settings

    return Path(get_settings().app_users_file).expanduser()


def _read(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {"users": {}}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise AccessError(f"{path}: not a users file ({' '.join(str(exc).split())})") from None
    if not isinstance(data, dict) or not isinstance(data.get("users"), dict):
        raise AccessError(f"{path}: not a users file (no `users` object)")
    return data


def _write(path: Path, data: dict[str, Any]) -> None:
    """Atomically, readable by its owner only (it holds password hashes)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name, suffix=".partial", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(data, out, indent=2, sort_keys=True)
            out.write("\n")
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def list_users(path: Path | None = None) -> list[str]:
    return sorted(_read(path or users_file())["users"])


def add_user(name: str, password: str, path: Path | None = None, replace: bool = False) -> bool:
    """Store NAME with a hash of PASSWORD; True when the user was new. An existing user needs `replace`."""
    path = path or users_file()
    if not USERNAME.fullmatch(name):
        raise AccessError(f"user name {name!r}: use 1–64 letters, digits, '.', '_', '@' or '-'")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AccessError(f"the password must have at least {MIN_PASSWORD_LENGTH} characters")
    data = _read(path)
    new = name not in data["users"]
    if not new and not replace:
        raise AccessError(f"user {name!r} exists in {path}: pass --replace to set a new password")
    data["users"][name] = {"hash": hash_password(password), "set_at": datetime.now(UTC).isoformat(timespec="seconds")}
    _write(path, data)
    Lockout(path).clear(name)
    return new


def remove_user(name: str, path: Path | None = None) -> None:
    path = path or users_file()
    data = _read(path)
    if name not in data["users"]:
        raise AccessError(f"no user {name!r} in {path}")
    del data["users"][name]
    _write(path, data)
    Lockout(path).clear(name)


# --- lockout -------------------------------------------------------------------------------------------


class Lockout:
    """Failed sign-ins per name, in a file beside the users file (shared by every session and app process):
    after `attempts` failures within `window_s` the name is refused for `window_s` seconds from the last one."""

    def __init__(self, users: Path, attempts: int | None = None, window_s: float | None = None) -> None:
        from db.config import get_settings

        settings = get_settings()
        self.path = users.with_name(users.name + ".failures")
        self.attempts = attempts or settings.app_lockout_attempts
        self.window_s = window_s or settings.app_lockout_seconds

    def _load(self) -> dict[str, list[float]]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            return {str(k): [float(t) for t in v] for k, v in data.items()}
        except (OSError, ValueError, TypeError, AttributeError):
            return {}

    def _recent(self, name: str, now: float) -> list[float]:
        return [t for t in self._load().get(name, []) if now - t < self.window_s]

    def locked_for(self, name: str, now: float | None = None) -> float:
        """Seconds until NAME may try again (0: it may now)."""
        now = time.time() if now is None else now
        recent = self._recent(name, now)
        if len(recent) < self.attempts:
            return 0.0
        return max(0.0, max(recent) + self.window_s - now)

    def fail(self, name: str, now: float | None = None) -> None:
        now = time.time() if now is None else now
        data = self._load()
        data[name] = [*self._recent(name, now), now][-self.attempts :]
        _write(self.path, data)

    def clear(self, name: str) -> None:
        data = self._load()
        if name in data:
            del data[name]
            _write(self.path, data)


@dataclass(frozen=True)
class SignIn:
    """The outcome of one sign-in attempt: who, or why not (the same words for a wrong name or password)."""

    user: str | None
    message: str = ""
    locked_s: float = 0.0


def sign_in(name: str, password: str, path: Path | None = None) -> SignIn:
    """Check NAME and PASSWORD against the users file, counting failures; a locked name is not even checked."""
    path = path or users_file()
    lockout = Lockout(path)
    name = name.strip()
    wait = lockout.locked_for(name)
    if wait:
        return SignIn(None, f"Too many failed sign-ins for this name: try again in {int(wait // 60) + 1} min.", wait)
    stored = _read(path)["users"].get(name, {}).get("hash")
    ok = verify_password(password, stored or _DUMMY) and stored is not None
    if ok:
        lockout.clear(name)
        return SignIn(name)
    lockout.fail(name)
    wait = lockout.locked_for(name)
    if wait:
        return SignIn(None, f"Too many failed sign-ins for this name: try again in {int(wait // 60) + 1} min.", wait)
    return SignIn(None, "Wrong user name or password.")


# --- where the app may be reached, and whether OIDC is set up ------------------------------------------


def is_loopback(address: str | None) -> bool:
    """Whether the app binds only to this machine (localhost, 127.0.0.0/8, ::1); '' or 0.0.0.0 is everywhere."""
    if not address:
        return False
    if address.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(address.strip("[]")).is_loopback
    except ValueError:
        return False


def secrets_files(cwd: Path | None = None) -> list[Path]:
    """Where Streamlit reads secrets.toml: the global ~/.streamlit one, then the project's .streamlit one."""
    return [Path.home() / ".streamlit" / "secrets.toml", (cwd or Path.cwd()) / ".streamlit" / "secrets.toml"]


def oidc_configured(files: list[Path] | None = None) -> bool:
    """Whether a secrets.toml Streamlit reads has an [auth] section with what st.login needs."""
    import tomllib

    for path in files if files is not None else secrets_files():
        try:
            auth = tomllib.loads(path.read_text(encoding="utf-8")).get("auth")
        except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
            continue
        shared = isinstance(auth, dict) and auth.get("redirect_uri") and auth.get("cookie_secret")
        if shared and oidc_providers(auth):
            return True
    return False


def oidc_providers(auth: dict[str, Any]) -> list[str | None]:
    """st.login's provider argument(s): named [auth.NAME] sections, or None for a single unnamed provider."""
    named = [k for k, v in auth.items() if isinstance(v, dict) and v.get("client_id")]
    return named or ([None] if auth.get("client_id") else [])


def email_allowed(email: str | None, allowed: str | None) -> bool:
    """INTEROP_APP_ALLOWED_EMAILS: comma-separated addresses or `@domain`s; unset lets every signed-in user in."""
    if not allowed:
        return True
    if not email:
        return False
    email = email.strip().lower()
    for entry in (e.strip().lower() for e in allowed.split(",")):
        if entry and (email == entry or (entry.startswith("@") and email.endswith(entry))):
            return True
    return False
