"""The configuration file: the documented example loads; a bad one is refused naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from api.config import ConfigError, load_config

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "pvetrail.example.toml"


def test_the_documented_example_loads_as_documented() -> None:
    config = load_config(str(EXAMPLE), environ={})
    assert config.database_url == "sqlite:///pvetrail.db"
    assert config.api.listen == "127.0.0.1:8080"
    assert [(t.name, t.role, t.secret_env) for t in config.api.tokens] == [
        ("grafana", "reader", "PVETRAIL_TOKEN_GRAFANA")
    ]
    (lab,) = config.clusters
    assert (lab.name, lab.hostname, lab.port) == ("lab", "pve1.example.org", 8006)
    assert (lab.fast_interval_s, lab.deep_interval_s) == (10, 300)


def test_environment_overrides_the_two_most_changed_values() -> None:
    config = load_config(
        str(EXAMPLE),
        environ={
            "PVETRAIL_DATABASE_URL": "postgresql://pvetrail@db:5432/pvetrail",
            "PVETRAIL_LISTEN": "0.0.0.0:9000",
        },
    )
    assert config.database_url == "postgresql://pvetrail@db:5432/pvetrail"
    assert config.api.listen == "0.0.0.0:9000"
    assert config.clusters[0].name == "lab"  # the rest of the file still applies


@pytest.mark.parametrize(
    ("replace", "by", "named"),
    [
        ("fast_interval_s = 10", "fast_interval_s = 0", "clusters[0].fast_interval_s"),
        ("deep_interval_s = 300", 'deep_interval_s = "often"', "clusters[0].deep_interval_s"),
        ('role = "reader"', 'role = "admin"', "api.tokens[0].role"),
        ('listen = "127.0.0.1:8080"', 'listen = "nowhere"', "api.listen"),
        ('token_secret_env = "PVETRAIL_LAB_TOKEN"', "", "token_secret_env"),
        ('name = "lab"', 'name = "lab"\ncolour = "blue"', "colour"),
        ('name = "lab"', 'name = "Lab Cluster!"', "clusters[0].name"),
    ],
)
def test_a_bad_file_is_refused_naming_the_key(
    tmp_path: Path, replace: str, by: str, named: str
) -> None:
    text = EXAMPLE.read_text()
    assert replace in text
    bad = tmp_path / "bad.toml"
    bad.write_text(text.replace(replace, by, 1))
    with pytest.raises(ConfigError) as caught:
        load_config(str(bad), environ={})
    assert named in str(caught.value)


def test_a_missing_or_malformed_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(str(tmp_path / "nope.toml"), environ={})
    broken = tmp_path / "broken.toml"
    broken.write_text("[[clusters]\nname = ")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(str(broken), environ={})
