"""Bearer-token auth: ``reader`` tokens may read, ``operator`` tokens may also change things.

Secrets come from the environment variables the configuration names, and are compared in
constant time (:func:`hmac.compare_digest` over every configured token, so the time taken does
not say which token was close).
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping, Sequence
from typing import Literal

import msgspec

from .config import ConfigError, TokenConfig, is_loopback
from .errors import ForbiddenError, UnauthorizedError

Role = Literal["reader", "operator"]

OPEN_PATHS = frozenset({"/healthz", "/readyz", "/metrics", "/", "/api/v1/hooks/pve"})
"""Paths that need no token (probes and scrapers, the web view's page; Proxmox's webhook
checks its own secret)."""

OPEN_PREFIX = "/ui/"
"""The web view's static files need no token either (its data calls do)."""


def is_open(path: str) -> bool:
    """Whether ``path`` is served without a token."""
    if path in OPEN_PATHS:
        return True
    # One plain file name under /ui/, never a path that could lead elsewhere.
    name = path.removeprefix(OPEN_PREFIX)
    return name != path and name != "" and "/" not in name and ".." not in name


READER_POSTS = frozenset({"/api/v1/rollback-plans"})
"""POST routes open to readers: they change nothing."""


class Token(msgspec.Struct, frozen=True):
    """A configured token with its secret resolved."""

    name: str
    role: Role
    secret: bytes


def resolve_tokens(tokens: Sequence[TokenConfig], environ: Mapping[str, str]) -> list[Token]:
    """Each token's secret from its variable; :class:`ConfigError` naming the variable if unset."""
    resolved = []
    for token in tokens:
        secret = environ.get(token.secret_env, "")
        if not secret:
            raise ConfigError(
                f"api token {token.name!r}: environment variable {token.secret_env} is not set"
            )
        if len(secret) < 16:
            raise ConfigError(
                f"api token {token.name!r}: the secret in {token.secret_env} is shorter than "
                "16 characters"
            )
        resolved.append(Token(token.name, token.role, secret.encode()))
    return resolved


def check_listen(host: str, tokens: Sequence[Token]) -> None:
    """Refuse a non-loopback address when no token is configured (anyone could read it all)."""
    if not tokens and not is_loopback(host):
        raise ConfigError(
            f"refusing to listen on {host}: no API tokens are configured, so anyone who can "
            "reach that address could read the whole inventory and its history; add an "
            "[[api.tokens]] entry (with its secret in the environment) or listen on 127.0.0.1"
        )


class Authenticator:
    """Who a request is (the token's name and role), and whether that role may do it."""

    def __init__(self, tokens: Sequence[Token]) -> None:
        self.tokens = list(tokens)

    @property
    def enabled(self) -> bool:
        """With no tokens configured the API serves anyone (on loopback only)."""
        return bool(self.tokens)

    def identify(self, authorization: str | None) -> Token | None:
        """The token the ``Authorization`` header carries; 401 when missing or unknown."""
        if not self.tokens:
            return None
        if not authorization:
            raise UnauthorizedError("this API needs an Authorization: Bearer TOKEN header")
        scheme, _, presented = authorization.partition(" ")
        if scheme.lower() != "bearer" or not presented.strip():
            raise UnauthorizedError("the Authorization header must be 'Bearer TOKEN'")
        candidate = presented.strip().encode("utf-8", "surrogateescape")
        found: Token | None = None
        for token in self.tokens:
            # No early exit: every token is compared, in constant time each.
            if hmac.compare_digest(candidate, token.secret):
                found = token
        if found is None:
            raise UnauthorizedError("the bearer token is not valid")
        return found

    @staticmethod
    def authorize(token: Token | None, method: str, path: str) -> None:
        """403 when a reader tries anything but a read (or a POST that changes nothing)."""
        if token is None or token.role == "operator":
            return
        if method in ("GET", "HEAD", "OPTIONS") or (method == "POST" and path in READER_POSTS):
            return
        raise ForbiddenError(
            f"token {token.name!r} has the reader role; {method} {path} needs an operator token"
        )
