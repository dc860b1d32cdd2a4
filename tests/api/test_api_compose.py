"""compose.yaml and the Dockerfile, checked without a Docker engine.

The file is parsed by ``compose-spec`` (Python bindings of the Rust ``compose_spec`` crate, a
strict parser of the Compose Specification: unknown keys, wrong types and unknown
``depends_on`` conditions are refused); the checks below add what the issue asks of this
particular file. The inline pvetrail config is loaded by our own ``load_config``.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from compose_spec import PyCompose

from api.auth import check_listen, resolve_tokens
from api.config import ConfigError, load_config, split_listen

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "compose.yaml"
DOCKERFILE = ROOT / "Dockerfile"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    text = COMPOSE.read_text()
    PyCompose.from_yaml(text).validate()  # raises ValueError on anything off-spec
    loaded: dict[str, Any] = yaml.safe_load(text)
    return loaded


def test_the_parser_is_strict() -> None:
    with pytest.raises(ValueError, match="bogus"):
        PyCompose.from_yaml("services:\n  a:\n    image: x\n    bogus: 1\n")
    with pytest.raises(ValueError, match="condition"):
        PyCompose.from_yaml(
            "services:\n  a:\n    image: x\n    depends_on:\n      b:\n"
            "        condition: service_wonderful\n"
        )


def test_no_version_key_and_both_services(compose: dict[str, Any]) -> None:
    assert "version" not in compose
    assert set(compose["services"]) == {"db", "pvetrail"}


def test_postgres_healthcheck_and_named_volume(compose: dict[str, Any]) -> None:
    db = compose["services"]["db"]
    test = db["healthcheck"]["test"]
    assert test[0] == "CMD"
    assert test[1:4] == ["pg_isready", "-h", "127.0.0.1"]
    volume = db["volumes"][0].split(":")[0]
    assert volume in compose["volumes"], "the data volume is a named volume"


def test_pvetrail_waits_for_a_healthy_database(compose: dict[str, Any]) -> None:
    app = compose["services"]["pvetrail"]
    assert app["depends_on"] == {"db": {"condition": "service_healthy"}}
    assert any("/readyz" in part for part in app["healthcheck"]["test"])
    assert "@db:5432/" in app["environment"]["PVETRAIL_DATABASE_URL"]


def test_listening_on_all_interfaces_is_allowed_by_a_reader_token(
    compose: dict[str, Any],
) -> None:
    app = compose["services"]["pvetrail"]
    env = app["environment"]
    host, port = split_listen(env["PVETRAIL_LISTEN"])
    assert host == "0.0.0.0"
    target = app["configs"][0]["target"]
    assert env["PVETRAIL_CONFIG"] == target
    content = compose["configs"][app["configs"][0]["source"]]["content"]
    with tempfile.NamedTemporaryFile("w", suffix=".toml") as handle:
        handle.write(content)
        handle.flush()
        config = load_config(handle.name, environ={})
    (token,) = config.api.tokens
    assert token.role == "reader"
    # The secret comes from the environment, required by compose itself.
    assert re.fullmatch(r"\$\{" + token.secret_env + r":\?[^}]+\}", env[token.secret_env])
    tokens = resolve_tokens(config.api.tokens, {token.secret_env: "s" * 20})
    check_listen(host, tokens)
    with pytest.raises(ConfigError):
        check_listen(host, [])
    assert f"127.0.0.1:{port}:{port}" in app["ports"][0]


def test_dockerfile_installs_every_package_and_serves() -> None:
    text = DOCKERFILE.read_text()
    for package in ("eventstore", "projections", "collectors", "api", "migrations"):
        assert f"COPY {package} ./{package}" in text
        assert (ROOT / package).is_dir()
    assert 'CMD ["pvetrail", "serve"]' in text
    assert re.search(r"HEALTHCHECK .*\n.*/readyz", text)
    assert "USER pvetrail" in text
    assert "ENV PVETRAIL_LISTEN=0.0.0.0:8080" in text
