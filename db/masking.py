"""The one place that hides credentials in URLs and messages before they are printed, logged or stored.

A URL can carry a secret in its userinfo (`scheme://user:PASSWORD@host`, or a bare token as the user of an
HTTP URL) and in query parameters (`?password=…`, `sslpassword`, `token`, `api_key`, `secret`, …). Masking is
purely textual, so it also works on URLs that cannot be parsed (a bad port, a typo in the scheme)."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote

MASK = "***"

#: Query-parameter (or `name=value`) names whose value is a secret: password, sslpassword, passwd, pwd, token,
#: access_token, key, api_key, apikey, sslkey, secret, client_secret, auth, authorization, credentials, sig….
SECRET_NAME = re.compile(r"pass|pwd|token|secret|key$|^auth$|authorization|credential|signature|^sig$", re.IGNORECASE)

_SCHEME = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*)://(?P<rest>.*)$", re.DOTALL)
#: A URL inside free text: from its scheme up to white space or a closing quote/bracket.
_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^\s'\"<>`]+")
#: `name=value` pairs in free text (libpq-style DSNs, echoed options) with a secret name.
_PAIR_IN_TEXT = re.compile(
    r"(?P<name>\b[A-Za-z_][A-Za-z0-9_.\-]*)(?P<eq>\s*=\s*)(?P<value>'[^']*'|\"[^\"]*\"|[^\s&;,)]+)"
)
#: Schemes whose userinfo without a password is itself a credential (`https://TOKEN@github.com`).
_TOKEN_AS_USER = {"http", "https", "ws", "wss", "git", "ssh+git"}


def _mask_userinfo(scheme: str, userinfo: str) -> str:
    user, colon, password = userinfo.partition(":")
    if colon:
        return f"{user}:{MASK}" if password else userinfo
    return MASK if userinfo and scheme.casefold() in _TOKEN_AS_USER else userinfo


def _mask_query(query: str) -> str:
    parts = re.split(r"([&;])", query)
    out = []
    for part in parts:
        name, eq, value = part.partition("=")
        if eq and value and SECRET_NAME.search(unquote(name)):
            part = f"{name}={MASK}"
        out.append(part)
    return "".join(out)


def mask_url(url: Any) -> str:
    """`url` (a string or a SQLAlchemy URL) with every credential replaced by ***, safe to print and store.

    The userinfo of a database URL ends at its last `@` (SQLAlchemy accepts unescaped `/`, `?` and `#` in
    passwords, so a password is never cut short and half shown); an HTTP URL's ends before its path."""
    if url is None:
        return ""
    if not isinstance(url, str):
        render = getattr(url, "render_as_string", None)
        url = render(hide_password=False) if callable(render) else str(url)
    match = _SCHEME.match(url)
    if match is None:
        return url
    scheme, rest = match.group("scheme"), match.group("rest")
    if scheme.casefold() in _TOKEN_AS_USER:
        end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
        at = rest.rfind("@", 0, end)
    else:
        at = rest.rfind("@")
    if at >= 0:
        userinfo, rest = rest[:at], rest[at + 1 :]
        prefix = f"{scheme}://{_mask_userinfo(scheme, userinfo)}@"
    else:
        prefix = f"{scheme}://"
    where, question, query = rest.partition("?")
    if not question:
        return prefix + rest
    query, hash_, fragment = query.partition("#")
    return f"{prefix}{where}?{_mask_query(query)}{hash_}{fragment}"


def mask_text(text: str) -> str:
    """Free text (an error message, a log line) with every URL in it masked and every `secret=value` hidden."""
    if not text:
        return text
    text = _URL_IN_TEXT.sub(lambda m: mask_url(m.group(0)), text)

    def pair(m: re.Match[str]) -> str:
        if not SECRET_NAME.search(m.group("name")) or m.group("value") == MASK:
            return m.group(0)
        return f"{m.group('name')}{m.group('eq')}{MASK}"

    return _PAIR_IN_TEXT.sub(pair, text)
