"""Secrets never reach the log: redaction by a keyed fingerprint (invariant 5).

A config value is a secret when its key is ``cipassword`` or contains ``password``, ``secret``,
``token`` or ``key`` (but not ``sshkeys``, which holds public keys, nor the harmless
``keyboard``/``keyctl``), and so is such an option inside a property string
(``password=...`` of a storage or mount string). Each secret becomes
``hmac-sha256:<hex>``, an HMAC of the value under the fingerprint key: a change of value is
still a change, the same value gives the same fingerprint in every process and after restarts,
and the value itself is never stored. Proxmox masks some secrets as ``**********``; a masked
value tells nothing and is never a change (the previous value is kept).

The key comes from the environment variable ``fingerprint_key_env`` names when it is set;
otherwise a random key is generated once and kept in the database's ``settings`` table
(beside the log, never in it), so every process on that database fingerprints alike.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets as _random
from collections.abc import Mapping
from typing import Any

from eventstore import EventStore

from .values import MASK as MASK  # defined with the other value rules; imported from here too
from .values import same

FINGERPRINT_PREFIX = "hmac-sha256:"

KEY_SETTING = "collectors.fingerprint_key"
"""The ``settings`` row holding the generated key (base64) when no variable names one."""

_SECRET_WORDS = re.compile(r"password|secret|token|key", re.IGNORECASE)
# Public keys and options that merely contain the word "key": never secrets.
_NOT_SECRET = frozenset({"sshkeys", "keyboard", "keyctl"})


class SecretsError(Exception):
    """The fingerprint key is unusable (an unset or empty variable, say)."""


def check_key_env(key_env: str, environ: Mapping[str, str]) -> bytes:
    """The key in the variable ``fingerprint_key_env`` names; :class:`SecretsError` naming
    the variable when it is unset or empty.

    Never a fall-back to the database's key: every redacted secret would then seem to rotate
    at once (a new fingerprint for the same value)."""
    value = environ.get(key_env)
    if value is None:
        raise SecretsError(
            f"fingerprint_key_env names {key_env}, which is not set: set it, or remove "
            "fingerprint_key_env to use the key kept in the database"
        )
    if not value:
        raise SecretsError(f"the fingerprint key variable {key_env} is set but empty")
    return value.encode()


async def load_fingerprint_key(
    store: EventStore, key_env: str | None, environ: Mapping[str, str]
) -> bytes:
    """The fingerprint key: the named variable's value when set, else the database's own key.

    The database key is made once (32 random bytes) by whichever process asks first and read
    by every later one, so fingerprints stay stable across restarts and processes.
    """
    if key_env:
        return check_key_env(key_env, environ)
    stored = await store.ensure_setting(
        KEY_SETTING, lambda: base64.b64encode(_random.token_bytes(32)).decode()
    )
    return base64.b64decode(stored)


def is_secret_key(key: str) -> bool:
    """Whether a config key (or a property-string option) names a secret."""
    lowered = key.lower()
    if lowered in _NOT_SECRET:
        return False
    return lowered == "cipassword" or bool(_SECRET_WORDS.search(lowered))


def fingerprint(key: bytes, value: str) -> str:
    """The keyed fingerprint of a secret value."""
    return FINGERPRINT_PREFIX + hmac.new(key, value.encode(), hashlib.sha256).hexdigest()


def is_fingerprint(value: object) -> bool:
    """Whether a value is already a fingerprint (redaction is idempotent)."""
    return isinstance(value, str) and value.startswith(FINGERPRINT_PREFIX)


def _redact_property_string(key: bytes, value: str) -> str:
    """``a=1,password=x`` -> ``a=1,password=hmac-sha256:...``; other parts untouched."""
    if "=" not in value:
        return value
    parts = value.split(",")
    for index, part in enumerate(parts):
        name, sep, option = part.partition("=")
        secret = sep and option and is_secret_key(name.strip())
        if secret and option != MASK and not is_fingerprint(option):
            parts[index] = f"{name}={fingerprint(key, option)}"
    return ",".join(parts)


def redact_value(key: bytes, name: str, value: Any) -> Any:
    """One config value as it may be stored: a secret (or a secret option) fingerprinted.

    A masked value (``**********``) is kept as it is: it tells nothing, and :func:`masks`
    makes sure it is never taken for a change.
    """
    if is_secret_key(name):
        if value is None or value == MASK or is_fingerprint(value):
            return value
        return fingerprint(key, value if isinstance(value, str) else str(value))
    if isinstance(value, str):
        return _redact_property_string(key, value)
    return value


def redact_config(key: bytes, config: Mapping[str, Any]) -> dict[str, Any]:
    """A whole config with every secret replaced by its fingerprint (see the module docstring)."""
    return {name: redact_value(key, name, value) for name, value in config.items()}


def masks(old: Any, new: Any) -> bool:
    """Whether ``new`` is only ``old`` as Proxmox shows it masked: then it is not a change.

    A whole value of ``**********``, or a property string whose masked options are the only
    ones that differ from the stored ones (:func:`collectors.values.same`).
    """
    if old is None or not isinstance(new, str) or MASK not in new:
        return False
    return same("", old, new)
