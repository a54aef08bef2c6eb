"""Effective configuration: environment variables over an optional TOML file over defaults.

Every setting is declared once in ``SETTINGS`` (name, environment variable, type, default,
whether it is secret, what it does). The README's configuration table must list each of them; a
test checks that.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import platformdirs

from catalogue.errors import ConfigError

_WEAK_SECRETS = {"", "secret", "changeme", "change-me", "dev", "development", "password"}
MIN_SECRET_LENGTH = 32


@dataclass(frozen=True)
class Setting:
    """One configuration setting as declared to users."""

    name: str
    env: str
    kind: type
    default: Any
    doc: str
    secret: bool = False
    choices: tuple[str, ...] = ()


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "env",
        "CATALOGUE_ENV",
        str,
        "development",
        "`development` or `production`. Production refuses to start without a strong secret key.",
        choices=("development", "production", "test"),
    ),
    Setting(
        "secret_key",
        "CATALOGUE_SECRET_KEY",
        str,
        "",
        "Server secret (≥ 32 characters) for session signing, keyed pseudonyms and "
        "deterministic noise. In development an ephemeral per-data-folder key is created.",
        secret=True,
    ),
    Setting(
        "data_dir",
        "CATALOGUE_DATA_DIR",
        str,
        "",
        "Data folder for the embedded PostgreSQL, the tantivy index and generated keys. "
        "Default: the user's data folder (e.g. `~/.local/share/cancer-imaging-catalogue`).",
    ),
    Setting(
        "database_url",
        "CATALOGUE_DATABASE_URL",
        str,
        "",
        "PostgreSQL URL (`postgresql://user:pass@host:5432/db`). Empty: embedded PostgreSQL "
        "in the data folder.",
        secret=True,
    ),
    Setting(
        "database_pool_min",
        "CATALOGUE_DATABASE_POOL_MIN",
        int,
        1,
        "Minimum connections kept in the pool.",
    ),
    Setting(
        "database_pool_max",
        "CATALOGUE_DATABASE_POOL_MAX",
        int,
        10,
        "Maximum connections in the pool.",
    ),
    Setting(
        "database_timeout",
        "CATALOGUE_DATABASE_TIMEOUT",
        float,
        5.0,
        "Seconds to wait for a database connection before answering 503.",
    ),
    Setting(
        "search_url",
        "CATALOGUE_SEARCH_URL",
        str,
        "",
        "Elasticsearch/OpenSearch URL(s), comma-separated (credentials may be in the URL). "
        "Empty: embedded tantivy index in the data folder.",
        secret=True,
    ),
    Setting(
        "search_backend",
        "CATALOGUE_SEARCH_BACKEND",
        str,
        "auto",
        "`auto` (tantivy without a search URL, otherwise detected from the server), "
        "`tantivy`, `opensearch`, `elasticsearch`, or a plugin name / dotted path.",
    ),
    Setting(
        "search_index_prefix",
        "CATALOGUE_SEARCH_INDEX_PREFIX",
        str,
        "catalogue-",
        "Prefix of index and alias names, so several catalogues can share a cluster.",
    ),
    Setting(
        "search_replicas",
        "CATALOGUE_SEARCH_REPLICAS",
        int,
        1,
        "Replicas per shard for new Elasticsearch/OpenSearch indices.",
    ),
    Setting(
        "search_shards",
        "CATALOGUE_SEARCH_SHARDS",
        int,
        1,
        "Primary shards for new Elasticsearch/OpenSearch indices.",
    ),
    Setting(
        "search_timeout",
        "CATALOGUE_SEARCH_TIMEOUT",
        float,
        10.0,
        "Seconds before a search-engine request fails.",
    ),
    Setting(
        "search_verify_certs",
        "CATALOGUE_SEARCH_VERIFY_CERTS",
        bool,
        True,
        "Verify TLS certificates of the search cluster.",
    ),
    Setting("host", "CATALOGUE_HOST", str, "127.0.0.1", "Address `catalogue serve` binds to."),
    Setting("port", "CATALOGUE_PORT", int, 8080, "Port `catalogue serve` listens on."),
    Setting(
        "workers",
        "CATALOGUE_WORKERS",
        int,
        8,
        "Worker threads of the production WSGI server (waitress), per process.",
    ),
    Setting(
        "processes",
        "CATALOGUE_PROCESSES",
        int,
        1,
        "Processes `catalogue serve` runs on one port (about one core each); the first also "
        "indexes and schedules harvests.",
    ),
    Setting(
        "base_url",
        "CATALOGUE_BASE_URL",
        str,
        "",
        "Public base URL (used for links and stable dataset IRIs). Default: `http://HOST:PORT`.",
    ),
    Setting(
        "token_ttl_days",
        "CATALOGUE_TOKEN_TTL_DAYS",
        int,
        90,
        "Default lifetime of new API tokens, in days.",
    ),
    Setting(
        "log_level",
        "CATALOGUE_LOG_LEVEL",
        str,
        "INFO",
        "Log level (`DEBUG`, `INFO`, `WARNING`, `ERROR`).",
        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
    ),
    Setting(
        "log_format",
        "CATALOGUE_LOG_FORMAT",
        str,
        "text",
        "`text` or `json` (structured logs; payloads are never logged).",
        choices=("text", "json"),
    ),
    Setting(
        "max_request_bytes",
        "CATALOGUE_MAX_REQUEST_BYTES",
        int,
        20 * 1024 * 1024,
        "Largest accepted request body, in bytes.",
    ),
    Setting(
        "export_page_cache_mb",
        "CATALOGUE_EXPORT_PAGE_CACHE_MB",
        int,
        2048,
        "Disk space (MB, in the data folder's `export-pages`) for DCAT export pages (runs of "
        "their listing and descriptions), sent again without assembling them while their "
        "datasets do not change; `0` turns the cache off.",
    ),
    Setting(
        "indexer_interval",
        "CATALOGUE_INDEXER_INTERVAL",
        float,
        1.0,
        "Seconds between outbox polls of the background indexer.",
    ),
    Setting(
        "harvest_scheduler",
        "CATALOGUE_HARVEST_SCHEDULER",
        bool,
        True,
        "Run scheduled harvest sources from `catalogue serve` (disable when cron runs "
        "`catalogue harvest run-due`).",
    ),
    Setting(
        "harvest_check_interval",
        "CATALOGUE_HARVEST_CHECK_INTERVAL",
        float,
        60.0,
        "Seconds between checks for due harvest sources.",
    ),
    Setting(
        "aggregate_floor",
        "CATALOGUE_AGGREGATE_FLOOR",
        int,
        10,
        "Privacy floor of record-derived dataset aggregates: counts below it are published as "
        "suppressed (`<10`), and values (modalities, age bands, years...) below it are not named.",
    ),
    Setting(
        "cohort_epsilon",
        "CATALOGUE_COHORT_EPSILON",
        float,
        0.2,
        "Privacy loss ε of one cohort count question, split equally over the count families it "
        "releases (subject and study totals, and subject and study cells when grouped).",
    ),
    Setting(
        "cohort_study_cap",
        "CATALOGUE_COHORT_STUDY_CAP",
        int,
        20,
        "Studies counted per subject at most in cohort study counts (the sensitivity of study "
        "counts).",
    ),
    Setting(
        "cohort_rounding",
        "CATALOGUE_COHORT_ROUNDING",
        int,
        10,
        "Released cohort counts are rounded to a multiple of this, after noise.",
    ),
    Setting(
        "cohort_floor",
        "CATALOGUE_COHORT_FLOOR",
        int,
        10,
        "Cohort counts whose noisy value is below this are suppressed (`<10`).",
    ),
    Setting(
        "cohort_budget",
        "CATALOGUE_COHORT_BUDGET",
        float,
        2.0,
        "Privacy budget (sum of ε) of one researcher over the rolling window.",
    ),
    Setting(
        "cohort_organisation_budget",
        "CATALOGUE_COHORT_ORGANISATION_BUDGET",
        float,
        4.0,
        "Privacy budget (sum of ε) of all researchers of one organisation over the window.",
    ),
    Setting(
        "cohort_window_days",
        "CATALOGUE_COHORT_WINDOW_DAYS",
        int,
        30,
        "Length of the rolling privacy-budget window, in days.",
    ),
    Setting(
        "catalog_title",
        "CATALOGUE_CATALOG_TITLE",
        str,
        "Cancer Imaging Catalogue",
        "Title of the catalogue in its DCAT-AP export (`dct:title` of the `dcat:Catalog`) and in "
        "the OAI-PMH `Identify` answer.",
    ),
    Setting(
        "catalog_description",
        "CATALOGUE_CATALOG_DESCRIPTION",
        str,
        "Cancer imaging datasets described with DCAT-AP 3, HealthDCAT-AP and EUCAIM-DCAT-AP.",
        "Description of the catalogue in its DCAT-AP export.",
    ),
    Setting(
        "catalog_publisher",
        "CATALOGUE_CATALOG_PUBLISHER",
        str,
        "Cancer Imaging Catalogue operator",
        "Name of the organisation that runs this catalogue: the publisher of the exported "
        "`dcat:Catalog`.",
    ),
    Setting(
        "catalog_admin_email",
        "CATALOGUE_CATALOG_ADMIN_EMAIL",
        str,
        "admin@example.org",
        "Set it in production. Contact address of the catalogue's publisher in the export "
        "and in the OAI-PMH `Identify` answer (`adminEmail`, required by the protocol).",
    ),
    Setting(
        "indexer_batch",
        "CATALOGUE_INDEXER_BATCH",
        int,
        500,
        "Outbox entries applied to the search engine per bulk request.",
    ),
    Setting(
        "metrics_token",
        "CATALOGUE_METRICS_TOKEN",
        str,
        "",
        "Bearer token `GET /metrics` requires (give it to the Prometheus scrape job). Empty: "
        "the endpoint is open, so keep it behind the firewall.",
        secret=True,
    ),
)

CONFIG_FILE_ENV = "CATALOGUE_CONFIG"
_BY_NAME = {s.name: s for s in SETTINGS}


def _parse(setting: Setting, raw: Any, source: str) -> Any:
    try:
        if setting.kind is bool:
            if isinstance(raw, bool):
                value: Any = raw
            else:
                text = str(raw).strip().lower()
                if text not in {"1", "0", "true", "false", "yes", "no", "on", "off"}:
                    raise ValueError(raw)
                value = text in {"1", "true", "yes", "on"}
        elif setting.kind is int:
            if isinstance(raw, bool):
                raise ValueError(raw)
            value = int(raw)
        elif setting.kind is float:
            value = float(raw)
        else:
            value = str(raw)
    except (TypeError, ValueError):
        raise ConfigError(
            f"{setting.env} ({source}) must be a {setting.kind.__name__}, got {raw!r}"
        ) from None
    if setting.choices:
        normalise: Callable[[str], str] = str.upper if setting.name == "log_level" else str.lower
        value = normalise(value)
        if value not in setting.choices:
            raise ConfigError(
                f"{setting.env} ({source}) must be one of {', '.join(setting.choices)}, got {raw!r}"
            )
    if setting.kind in (int, float) and value < 0:
        raise ConfigError(f"{setting.env} ({source}) must not be negative, got {raw!r}")
    return value


@dataclass(frozen=True)
class Config:
    """The effective configuration. Build it with :func:`load_config`."""

    env: str = "development"
    secret_key: str = ""
    data_dir: str = ""
    database_url: str = ""
    database_pool_min: int = 1
    database_pool_max: int = 10
    database_timeout: float = 5.0
    search_url: str = ""
    search_backend: str = "auto"
    search_index_prefix: str = "catalogue-"
    search_replicas: int = 1
    search_shards: int = 1
    search_timeout: float = 10.0
    search_verify_certs: bool = True
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 8
    processes: int = 1
    base_url: str = ""
    token_ttl_days: int = 90
    log_level: str = "INFO"
    log_format: str = "text"
    max_request_bytes: int = 20 * 1024 * 1024
    export_page_cache_mb: int = 2048
    indexer_interval: float = 1.0
    indexer_batch: int = 500
    harvest_scheduler: bool = True
    harvest_check_interval: float = 60.0
    aggregate_floor: int = 10
    cohort_epsilon: float = 0.2
    cohort_study_cap: int = 20
    cohort_rounding: int = 10
    cohort_floor: int = 10
    cohort_budget: float = 2.0
    cohort_organisation_budget: float = 4.0
    cohort_window_days: int = 30
    catalog_title: str = "Cancer Imaging Catalogue"
    catalog_description: str = (
        "Cancer imaging datasets described with DCAT-AP 3, HealthDCAT-AP and EUCAIM-DCAT-AP.")
    catalog_publisher: str = "Cancer Imaging Catalogue operator"
    catalog_admin_email: str = "admin@example.org"
    metrics_token: str = ""
    sources: dict[str, str] = field(default_factory=dict, compare=False)

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir)

    @property
    def public_base_url(self) -> str:
        return (self.base_url or f"http://{self.host}:{self.port}").rstrip("/")

    @property
    def production(self) -> bool:
        return self.env == "production"

    def replace(self, **changes: Any) -> Config:
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values.update(changes)
        return Config(**values)

    def masked(self) -> dict[str, Any]:
        """Settings as a dict with secrets masked, for display."""
        out: dict[str, Any] = {}
        for s in SETTINGS:
            value = getattr(self, s.name)
            if s.secret and value:
                value = _mask(s.name, str(value))
            out[s.name] = value
        return out


def _mask(name: str, value: str) -> str:
    if name in {"database_url", "search_url"}:
        # keep the host visible, hide credentials
        parts = []
        for url in value.split(","):
            if "@" in url and "://" in url:
                scheme, rest = url.split("://", 1)
                parts.append(f"{scheme}://***@{rest.rsplit('@', 1)[1]}")
            else:
                parts.append(url)
        return ",".join(parts)
    return "********"


def default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir("cancer-imaging-catalogue", appauthor=False))


def load_config(
    environ: Mapping[str, str] | None = None,
    config_file: str | Path | None = None,
    **overrides: Any,
) -> Config:
    """Read settings from ``overrides`` > environment > TOML file > defaults, then validate.

    The TOML file is ``config_file``, else ``$CATALOGUE_CONFIG``; keys are setting names
    (``database_url = "..."``), optionally inside a ``[catalogue]`` table.
    """
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    path = config_file or env.get(CONFIG_FILE_ENV)
    if path:
        file_values = _read_toml(Path(path))
        for key, raw in file_values.items():
            if key not in _BY_NAME:
                raise ConfigError(
                    f"unknown setting {key!r} in {path}; known settings: "
                    + ", ".join(s.name for s in SETTINGS)
                )
            values[key] = _parse(_BY_NAME[key], raw, str(path))
            sources[key] = str(path)
    for s in SETTINGS:
        if s.env in env and env[s.env] != "":
            values[s.name] = _parse(s, env[s.env], "environment")
            sources[s.name] = "environment"
    for key, raw in overrides.items():
        if raw is None:
            continue
        if key not in _BY_NAME:
            raise ConfigError(f"unknown setting {key!r}")
        values[key] = _parse(_BY_NAME[key], raw, "command line")
        sources[key] = "command line"
    if not values.get("data_dir"):
        values["data_dir"] = str(default_data_dir())
        sources.setdefault("data_dir", "default")
    values["data_dir"] = str(Path(values["data_dir"]).expanduser().resolve())
    config = Config(**values, sources=sources)
    validate(config)
    return config


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"configuration file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"configuration file {path} is not valid TOML: {exc}") from None
    table = data.get("catalogue", data)
    if not isinstance(table, dict):
        raise ConfigError(f"configuration file {path}: [catalogue] must be a table")
    return table


def validate(config: Config) -> None:
    """Cross-field checks; raise :class:`ConfigError` with what to do."""
    if config.database_pool_min > config.database_pool_max:
        raise ConfigError("CATALOGUE_DATABASE_POOL_MIN must not exceed CATALOGUE_DATABASE_POOL_MAX")
    if not 0 < config.port < 65536:
        raise ConfigError(f"CATALOGUE_PORT must be between 1 and 65535, got {config.port}")
    if config.workers < 1:
        raise ConfigError("CATALOGUE_WORKERS must be at least 1")
    if not 1 <= config.processes <= 64:
        raise ConfigError(f"CATALOGUE_PROCESSES must be between 1 and 64, got {config.processes}")
    if config.database_url and not config.database_url.startswith(("postgresql://", "postgres://")):
        raise ConfigError(
            "CATALOGUE_DATABASE_URL must start with postgresql:// (leave it empty for the "
            "embedded PostgreSQL)"
        )
    for url in filter(None, config.search_url.split(",")):
        if not url.strip().startswith(("http://", "https://")):
            raise ConfigError(
                f"CATALOGUE_SEARCH_URL entries must be http(s) URLs, got {url.strip()!r} "
                "(leave it empty for the embedded tantivy index)"
            )
    if config.production:
        check_secret_strength(config.secret_key)


def check_secret_strength(secret: str) -> None:
    if not secret:
        raise ConfigError(
            "CATALOGUE_SECRET_KEY is not set; production mode needs a random secret of at least "
            f"{MIN_SECRET_LENGTH} characters (e.g. `python -c 'import secrets; "
            "print(secrets.token_urlsafe(48))'`)"
        )
    if len(secret) < MIN_SECRET_LENGTH or secret.lower() in _WEAK_SECRETS or len(set(secret)) < 8:
        raise ConfigError(
            f"CATALOGUE_SECRET_KEY is too weak: use a random secret of at least "
            f"{MIN_SECRET_LENGTH} characters with varied characters"
        )
