"""The pure parts of the dashboard's sessions: cookies, CSRF tokens, token fingerprints."""

from __future__ import annotations

import secrets

import pytest

from joblog.api.auth import TokenGuard
from joblog.api.sessions import cookie_value, csrf_matches, csrf_token

WRITE = "write-token-0123456789abcdef"
READ = "read-token-0123456789abcdef"


def scope(*cookies: bytes) -> dict[str, object]:
    return {"type": "http", "headers": [(b"cookie", value) for value in cookies]}


class TestCookieValue:
    def test_finds_the_named_cookie_among_others(self) -> None:
        assert cookie_value(scope(b"a=1; joblog_session=abc ;b=2")) == "abc"

    def test_looks_in_every_cookie_header(self) -> None:
        assert cookie_value(scope(b"a=1", b"joblog_session=xyz")) == "xyz"

    @pytest.mark.parametrize("header", [b"", b"joblog_session=", b"joblog_sessionx=1", b"\xff\x00"])
    def test_none_when_absent_or_empty(self, header: bytes) -> None:
        assert cookie_value(scope(header)) is None

    def test_other_names(self) -> None:
        assert cookie_value(scope(b"joblog_login=n"), "joblog_login") == "n"


class TestCsrf:
    def test_is_bound_to_the_session(self) -> None:
        mine, theirs = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        assert csrf_matches(mine, csrf_token(mine))
        assert not csrf_matches(mine, csrf_token(theirs))

    def test_is_not_the_secret(self) -> None:
        secret = secrets.token_urlsafe(32)
        assert secret not in csrf_token(secret)

    @pytest.mark.parametrize("secret", [None, "", "short", "x" * 44, "é" * 43, "a.b" + "c" * 40])
    def test_a_malformed_session_matches_nothing(self, secret: str | None) -> None:
        assert not csrf_matches(secret, "anything")

    @pytest.mark.parametrize("presented", [None, "", "\x00", "é" * 64, "0" * 10_000])
    def test_a_malformed_token_matches_nothing(self, presented: str | None) -> None:
        assert not csrf_matches(secrets.token_urlsafe(32), presented)


class TestFingerprints:
    def test_role_follows_the_configuration(self) -> None:
        guard = TokenGuard([WRITE], [READ])
        assert guard.role_of_fingerprint(TokenGuard.fingerprint(WRITE)) == "write"
        assert guard.role_of_fingerprint(TokenGuard.fingerprint(READ)) == "read"
        assert TokenGuard([], [WRITE]).role_of_fingerprint(TokenGuard.fingerprint(WRITE)) == "read"

    @pytest.mark.parametrize("fingerprint", ["", "0" * 64, "é", READ])
    def test_unknown_fingerprints_have_no_role(self, fingerprint: str) -> None:
        assert TokenGuard([WRITE], [READ]).role_of_fingerprint(fingerprint) is None

    def test_a_fingerprint_does_not_hold_the_token(self) -> None:
        assert WRITE not in TokenGuard.fingerprint(WRITE)
        assert TokenGuard.fingerprint(WRITE) != TokenGuard.fingerprint(READ)
