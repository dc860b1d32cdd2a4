"""The configuration: one TOML file plus environment overrides, declared once and typed.

``PVETRAIL_CONFIG`` names the file (or ``--config``); ``PVETRAIL_DATABASE_URL``,
``PVETRAIL_DATABASE_READER_ROLE`` and ``PVETRAIL_LISTEN`` override ``database_url``,
``database_reader_role`` and ``api.listen``. Secrets are never written in
the file: each is named by the environment variable that holds it.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from collections.abc import Mapping
from typing import Annotated, Literal

import msgspec

from collectors.config import ClusterConfig

DEFAULT_DATABASE_URL = "sqlite:///pvetrail.db"
DEFAULT_LISTEN = "127.0.0.1:8080"
DEFAULT_READER_ROLE = "pvetrail_reader"

_ROLE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
"""A PostgreSQL role name pvetrail writes into SQL unquoted: lower case, as an unquoted
identifier folds to, and at most 63 bytes (longer ones are cut short by the server)."""


class ConfigError(Exception):
    """The configuration is missing, malformed or incomplete; the message names the key."""


class TokenConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """An API bearer token: its name, role and the variable holding its secret."""

    name: Annotated[str, msgspec.Meta(min_length=1)]
    role: Literal["reader", "operator"]
    secret_env: Annotated[str, msgspec.Meta(min_length=1)]


class ApiConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The ``[api]`` table."""

    listen: str = DEFAULT_LISTEN
    allowed_hosts: list[str] = []
    """Host names answered besides the listen address while no token is configured (a page
    of another site, rebinding its name to this address, is refused)."""
    webhook_secret_env: str | None = None
    tokens: list[TokenConfig] = []


class Config(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The whole configuration."""

    database_url: str = DEFAULT_DATABASE_URL
    fingerprint_key_env: str | None = None
    desired_dir: Annotated[
        str | None,
        msgspec.Meta(
            description="a directory of desired-state sets, one *.yaml/*.json file each, named "
            "after the file and re-read when it changes (relative paths from the working "
            "directory); a set stored with PUT /desired/{name} of the same name wins"
        ),
    ] = None
    drift_ignore: Annotated[
        list[Annotated[str, msgspec.Meta(min_length=1)]],
        msgspec.Meta(
            description="glob patterns over field names that no drift report shows "
            "(config.vmgenid, config.net*.macaddr, lock)"
        ),
    ] = []
    database_reader_role: Annotated[
        str,
        msgspec.Meta(
            description="PostgreSQL: the NOLOGIN role `pvetrail migrate` grants SELECT on the "
            "SQL views of docs/sql.md (nothing else), created when the migrating user may "
            "create roles"
        ),
    ] = DEFAULT_READER_ROLE
    api: ApiConfig = ApiConfig()
    clusters: list[ClusterConfig] = []

    def cluster(self, name: str) -> ClusterConfig:
        """The cluster of that name; :class:`ConfigError` naming the known ones otherwise."""
        for cluster in self.clusters:
            if cluster.name == name:
                return cluster
        known = ", ".join(c.name for c in self.clusters) or "none configured"
        raise ConfigError(f"no cluster named {name!r} (known: {known})")


def split_listen(listen: str) -> tuple[str, int]:
    """``host:port`` (or ``[v6]:port``) as a pair; :class:`ConfigError` when malformed.

    Port 0 asks the system for a free port (``serve`` prints the one it got).
    """
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or not host or not 0 <= int(port) < 65536:
        raise ConfigError(f"api.listen {listen!r} is not HOST:PORT")
    return host.strip("[]"), int(port)


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address (or ``localhost``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def load_config(path: str | None, environ: Mapping[str, str] | None = None) -> Config:
    """Read the file (when given) and apply environment overrides; validate everything."""
    env = os.environ if environ is None else environ
    path = path or env.get("PVETRAIL_CONFIG") or None
    raw: dict[str, object] = {}
    if path is not None:
        try:
            with open(path, "rb") as handle:
                raw = tomllib.load(handle)
        except FileNotFoundError:
            raise ConfigError(f"config file {path!r} does not exist") from None
        except OSError as exc:
            raise ConfigError(f"cannot read config file {path!r}: {exc.strerror}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path!r} is not valid TOML: {exc}") from exc
    if env.get("PVETRAIL_DATABASE_URL"):
        raw["database_url"] = env["PVETRAIL_DATABASE_URL"]
    if env.get("PVETRAIL_DATABASE_READER_ROLE"):
        raw["database_reader_role"] = env["PVETRAIL_DATABASE_READER_ROLE"]
    if env.get("PVETRAIL_LISTEN"):
        api = dict(raw.get("api") or {})  # type: ignore[call-overload]
        api["listen"] = env["PVETRAIL_LISTEN"]
        raw["api"] = api
    where = f"config file {path!r}" if path else "configuration"
    try:
        config = msgspec.convert(raw, Config)
    except msgspec.ValidationError as exc:
        # msgspec names the key as a path, e.g. "at `$.clusters[0].fast_interval_s`".
        raise ConfigError(f"{where}: {exc}") from exc
    split_listen(config.api.listen)
    role = config.database_reader_role
    if not _ROLE_NAME.match(role) or role.startswith("pg_"):
        raise ConfigError(
            f"{where}: database_reader_role {role!r} is not a plain PostgreSQL role name: use "
            "lower-case letters, digits and '_', starting with a letter or '_', at most 63, "
            "and not starting with 'pg_' (reserved)"
        )
    names = [c.name for c in config.clusters]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigError(f"{where}: cluster name(s) {', '.join(duplicates)} given twice")
    return config
