"""The app's door: when it is served beyond localhost (or INTEROP_APP_SIGNIN=required) nothing but a sign-in
shows until someone signs in, with Streamlit's OIDC (`st.login`) or a built-in user (explorer.access)."""

from __future__ import annotations

from typing import Any

import streamlit as st

from explorer.access import SETUP_HELP, email_allowed, is_loopback, list_users, oidc_providers, sign_in, users_file

SESSION_KEY = "interop_signed_in_user"


def required() -> bool:
    """Sign-in is needed when asked for, or when the server listens on anything but a loopback address."""
    from db.config import get_settings

    if get_settings().app_signin == "required":
        return True
    address = st.get_option("server.address")
    return bool(address) and not is_loopback(str(address))


def _secrets_auth() -> dict[str, Any]:
    """The [auth] section of secrets.toml, or {} when there is none (or no secrets file at all)."""
    try:
        auth = st.secrets.get("auth")
    except Exception:  # no secrets.toml anywhere: Streamlit raises rather than returning nothing
        return {}
    return auth.to_dict() if hasattr(auth, "to_dict") else dict(auth or {})


def _builtin_users() -> list[str]:
    try:
        return list_users()
    except Exception:  # a broken users file lets nobody in, and says so below
        return []


def _signed_out_page(providers: list[str | None], builtin: bool) -> None:
    st.title("Interop Lab")
    st.caption("This explorer is shared: sign in to continue.")
    for provider in providers:
        label = f"Sign in with {provider}" if provider else "Sign in with your identity provider"
        st.button(label, key=f"oidc_{provider}", on_click=st.login, args=(provider,) if provider else ())
    if builtin:
        with st.form("interop_signin", clear_on_submit=True):
            name = st.text_input("User name", key="signin_name")
            password = st.text_input("Password", type="password", key="signin_password")
            submitted = st.form_submit_button("Sign in", type="primary")
        if submitted:
            outcome = sign_in(name, password)
            del password  # the form is cleared on submit; nothing keeps the password
            if outcome.user:
                st.session_state[SESSION_KEY] = outcome.user
                st.rerun()
            st.error(outcome.message, icon=":material/lock:")


def waiting() -> bool:
    """Whether this session still has to sign in (checked before any page is shown)."""
    if not required():
        return False
    if st.session_state.get(SESSION_KEY) in _builtin_users():
        return False
    return not (_secrets_auth() and st.user.get("is_logged_in", False))


def gate() -> str | None:
    """Return who is signed in (None when sign-in is not needed); otherwise show the sign-in and stop the run."""
    if not required():
        return None
    from db.config import get_settings

    auth = _secrets_auth()
    providers = oidc_providers(auth) if auth else []
    builtin = _builtin_users()
    if providers and st.user.get("is_logged_in", False):  # AppTest's st.user may lack the key
        email = st.user.get("email")
        if email_allowed(str(email) if email else None, get_settings().app_allowed_emails):
            _signed_in(str(email or st.user.get("name") or "signed in"), oidc=True)
            return str(email or st.user.get("name"))
        st.error(f"{email or 'This account'} may not use this explorer (INTEROP_APP_ALLOWED_EMAILS).")
        st.button("Sign out", on_click=st.logout)
        st.stop()
    user = st.session_state.get(SESSION_KEY)
    if user and user in builtin:
        _signed_in(str(user), oidc=False)
        return str(user)
    st.session_state.pop(SESSION_KEY, None)  # removed from the users file meanwhile: signed out
    if not providers and not builtin:
        st.error(f"This explorer needs sign-in but none is set up: {SETUP_HELP} (users file: {users_file()}).")
        st.stop()
    _signed_out_page(providers, bool(builtin))
    st.stop()
    return None  # not reached


def _signed_in(who: str, oidc: bool) -> None:
    with st.sidebar:
        st.caption(f"Signed in as **{who}**")
        if oidc:
            st.button("Sign out", key="signout", on_click=st.logout, icon=":material/logout:")
        elif st.button("Sign out", key="signout", icon=":material/logout:"):
            st.session_state.pop(SESSION_KEY, None)
            st.rerun()
