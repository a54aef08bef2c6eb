"""Configuration: environment over TOML over defaults, validation, masking."""

from __future__ import annotations

from pathlib import Path

import pytest

from catalogue.config import SETTINGS, load_config
from catalogue.errors import ConfigError


def test_defaults_and_environment(tmp_path: Path) -> None:
    config = load_config(
        environ={
            "CATALOGUE_PORT": "9000",
            "CATALOGUE_DATA_DIR": str(tmp_path),
            "CATALOGUE_SEARCH_VERIFY_CERTS": "false",
        }
    )
    assert config.port == 9000
    assert config.data_dir == str(tmp_path.resolve())
    assert config.search_verify_certs is False
    assert config.search_backend == "auto"
    assert config.sources["port"] == "environment"


def test_toml_file_is_overridden_by_environment(tmp_path: Path) -> None:
    path = tmp_path / "catalogue.toml"
    path.write_text('[catalogue]\nport = 7000\nworkers = 3\nlog_level = "debug"\n')
    config = load_config(environ={"CATALOGUE_CONFIG": str(path), "CATALOGUE_PORT": "7001"})
    assert (config.port, config.workers, config.log_level) == (7001, 3, "DEBUG")
    assert config.sources["workers"] == str(path)


@pytest.mark.parametrize(
    "env, message",
    [
        ({"CATALOGUE_PORT": "eighty"}, "CATALOGUE_PORT .* must be a int"),
        ({"CATALOGUE_PORT": "70000"}, "between 1 and 65535"),
        ({"CATALOGUE_ENV": "staging"}, "must be one of development, production"),
        ({"CATALOGUE_DATABASE_URL": "mysql://x"}, "must start with postgresql://"),
        ({"CATALOGUE_SEARCH_URL": "localhost:9200"}, "must be http"),
        (
            {"CATALOGUE_DATABASE_POOL_MIN": "20", "CATALOGUE_DATABASE_POOL_MAX": "5"},
            "must not exceed",
        ),
        ({"CATALOGUE_ENV": "production"}, "CATALOGUE_SECRET_KEY is not set"),
        ({"CATALOGUE_ENV": "production", "CATALOGUE_SECRET_KEY": "changeme"}, "too weak"),
        ({"CATALOGUE_ENV": "production", "CATALOGUE_SECRET_KEY": "a" * 40}, "too weak"),
        ({"CATALOGUE_SEARCH_VERIFY_CERTS": "perhaps"}, "must be a bool"),
    ],
)
def test_invalid_configuration_is_a_clear_error(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(environ=env)


def test_unknown_or_broken_toml(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("prot = 1\n")
    with pytest.raises(ConfigError, match="unknown setting 'prot'"):
        load_config(environ={}, config_file=path)
    path.write_text("port = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(environ={}, config_file=path)
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(environ={}, config_file=tmp_path / "missing.toml")


def test_production_with_strong_secret_starts() -> None:
    config = load_config(
        environ={
            "CATALOGUE_ENV": "production",
            "CATALOGUE_SECRET_KEY": "Zq8-vL2pX9_rT4mK7wB1nY6cH3sD0fG5jA",
        }
    )
    assert config.production


def test_secrets_are_masked() -> None:
    config = load_config(
        environ={
            "CATALOGUE_SECRET_KEY": "s3cr3t-value-that-is-long-enough-for-production",
            "CATALOGUE_DATABASE_URL": "postgresql://cat:hunter2@db.example:5432/catalogue",
            "CATALOGUE_SEARCH_URL": "https://elastic:pw123@es1:9200,https://es2:9200",
        }
    )
    masked = config.masked()
    text = str(masked)
    assert "s3cr3t" not in text and "hunter2" not in text and "pw123" not in text
    assert masked["database_url"] == "postgresql://***@db.example:5432/catalogue"
    assert masked["search_url"] == "https://***@es1:9200,https://es2:9200"
    assert masked["secret_key"] == "********"


def test_every_setting_has_an_environment_variable_and_doc() -> None:
    for s in SETTINGS:
        assert s.env == "CATALOGUE_" + s.name.upper()
        assert len(s.doc) > 10
