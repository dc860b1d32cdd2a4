"""One cluster's collector settings, as the ``[[clusters]]`` table of the config file gives them.

Secrets are never in the file: ``password_env`` and ``token_secret_env`` name the environment
variables that hold them, read only when a client is built.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated

import msgspec

_NAME = r"^[a-z0-9][a-z0-9_-]{0,62}$"


class ClusterConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A Proxmox VE cluster to observe."""

    name: Annotated[str, msgspec.Meta(pattern=_NAME, description="cluster name, first part of ids")]
    host: Annotated[str, msgspec.Meta(min_length=1, description="host or host:port (8006)")]
    user: str | None = None
    password_env: str | None = None
    token_id: str | None = None
    token_secret_env: str | None = None
    verify_tls: bool | str = True
    fast_interval_s: Annotated[int, msgspec.Meta(ge=1)] = 10
    deep_interval_s: Annotated[int, msgspec.Meta(ge=1)] = 300
    connect_timeout_s: Annotated[float, msgspec.Meta(gt=0)] = 5.0
    read_timeout_s: Annotated[float, msgspec.Meta(gt=0)] = 30.0
    max_workers: Annotated[int, msgspec.Meta(ge=1, le=64)] = 4
    # Transient failures (connection errors, timeouts, 502-504) are tried again this many
    # times, waiting retry_backoff_s, then twice that, ... plus random jitter.
    retries: Annotated[int, msgspec.Meta(ge=0, le=10)] = 2
    retry_backoff_s: Annotated[float, msgspec.Meta(ge=0)] = 0.5

    def __post_init__(self) -> None:
        if self.token_id is not None:
            if self.token_secret_env is None:
                raise ValueError(f"clusters[{self.name}]: token_id needs token_secret_env")
            if not re.match(r"^[^@!]+@[^@!]+![A-Za-z][A-Za-z0-9._-]*$", self.token_id):
                raise ValueError(
                    f"clusters[{self.name}].token_id {self.token_id!r} is not USER@REALM!TOKENID"
                )
        elif self.user is not None:
            if self.password_env is None:
                raise ValueError(
                    f"clusters[{self.name}]: user needs password_env (or use token_id)"
                )
        else:
            raise ValueError(
                f"clusters[{self.name}]: give token_id with token_secret_env "
                "(preferred) or user with password_env"
            )

    def unset_secret(self, environ: Mapping[str, str]) -> str | None:
        """Why this cluster cannot log in with ``environ`` (its secret's variable is unset or
        empty), naming the cluster and the variable; None when it can."""
        if self.token_id is not None:
            name, what = self.token_secret_env, "token secret"
        else:
            name, what = self.password_env, "password"
        if name is not None and environ.get(name):
            return None
        return f"clusters[{self.name}]: the variable {name} ({what}) is not set"

    @property
    def hostname(self) -> str:
        """The host part of ``host``."""
        return self.host.rsplit(":", 1)[0] if self._has_port else self.host

    @property
    def port(self) -> int:
        """The port of ``host``; 8006 (pveproxy) when none is given."""
        return int(self.host.rsplit(":", 1)[1]) if self._has_port else 8006

    @property
    def _has_port(self) -> bool:
        return bool(re.match(r"^[^:]+:\d+$", self.host))
