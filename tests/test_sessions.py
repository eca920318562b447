from __future__ import annotations

from folyam.sessions import SessionSigner


def test_a_signed_cookie_gives_back_its_session_id() -> None:
    signer = SessionSigner("secret")
    session_id = signer.new_session_id()
    assert signer.session_id(signer.cookie_value(session_id)) == session_id
    assert signer.new_session_id() != session_id


def test_tampered_foreign_or_missing_cookies_are_refused() -> None:
    signer = SessionSigner("secret")
    cookie = signer.cookie_value("abc")
    session_id, _, mac = cookie.rpartition(".")
    assert signer.session_id(f"abd.{mac}") is None
    assert signer.session_id(f"{session_id}.{mac[:-1]}0") is None
    assert SessionSigner("other secret").session_id(cookie) is None
    assert signer.session_id(None) is None
    assert signer.session_id("no-dot") is None


def test_csrf_tokens_belong_to_one_session_and_one_secret() -> None:
    signer = SessionSigner(b"secret")
    token = signer.csrf_token("a")
    assert signer.csrf_ok("a", token)
    assert not signer.csrf_ok("b", token)
    assert not signer.csrf_ok("a", None) and not signer.csrf_ok("a", "")
    assert not SessionSigner(b"other").csrf_ok("a", token)
    # The CSRF token is not the cookie's signature: knowing one does not give the other.
    assert token not in signer.cookie_value("a")
