"""``serve`` and ``sync`` refuse to start on a secret they cannot read: exit 2 naming the
variable (and the cluster), no traceback, and nothing written to the database."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_api_cli import run, run_serve

_CLUSTER = """
[[clusters]]
name = "lab"
host = "127.0.0.1:1"
{auth}
"""


def _config(tmp_path: Path, *, top: str = "", auth: str = "") -> Path:
    path = tmp_path / "pvetrail.toml"
    database = tmp_path / "pvetrail.db"
    text = f'database_url = "sqlite:///{database}"\n{top}\n'
    if auth:
        text += _CLUSTER.format(auth=auth)
    path.write_text(text)
    return path


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("PVETRAIL_DATABASE_URL", "PVETRAIL_LISTEN", "PVETRAIL_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    for name in ("FP_KEY_UNSET", "LAB_TOKEN_UNSET", "LAB_PASSWORD_UNSET"):
        monkeypatch.delenv(name, raising=False)


def test_serve_refuses_an_unset_fingerprint_key_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(
        "PVETRAIL_CONFIG", str(_config(tmp_path, top='fingerprint_key_env = "FP_KEY_UNSET"'))
    )
    code, _, err = run_serve(capsys)
    assert code == 2
    assert "fingerprint_key_env names FP_KEY_UNSET, which is not set" in err
    assert "Traceback" not in err
    assert not (tmp_path / "pvetrail.db").exists()


def test_serve_refuses_an_empty_fingerprint_key_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(
        "PVETRAIL_CONFIG", str(_config(tmp_path, top='fingerprint_key_env = "FP_KEY_UNSET"'))
    )
    monkeypatch.setenv("FP_KEY_UNSET", "")
    code, _, err = run_serve(capsys)
    assert code == 2
    assert "FP_KEY_UNSET is set but empty" in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("auth", "variable", "what"),
    [
        (
            'token_id = "audit@pve!pvetrail"\ntoken_secret_env = "LAB_TOKEN_UNSET"',
            "LAB_TOKEN_UNSET",
            "token secret",
        ),
        (
            'user = "audit@pve"\npassword_env = "LAB_PASSWORD_UNSET"',
            "LAB_PASSWORD_UNSET",
            "password",
        ),
    ],
)
@pytest.mark.parametrize("command", ["serve", "sync"])
def test_a_cluster_whose_secret_variable_is_unset_is_refused_at_start(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    auth: str,
    variable: str,
    what: str,
    command: str,
) -> None:
    monkeypatch.setenv("PVETRAIL_CONFIG", str(_config(tmp_path, auth=auth)))
    code, _, err = run_serve(capsys) if command == "serve" else run(capsys, "sync")
    assert code == 2
    assert f"clusters[lab]: the variable {variable} ({what}) is not set" in err
    assert "Traceback" not in err
    assert not (tmp_path / "pvetrail.db").exists()
