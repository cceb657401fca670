"""Configuration from the environment, read once at start."""

from __future__ import annotations

import dataclasses
import os

from .db.dialect import UrlError, parse_url, sqlite_url


class ConfigError(ValueError):
    """A setting in the environment cannot be used."""


@dataclasses.dataclass(frozen=True)
class Config:
    version: str = "1.0"  # NETAPI_VERSION, baked into each image
    bind: str = "0.0.0.0"  # NETAPI_BIND
    port: int = 9696  # HITLESS_PORT
    db_path: str = "/var/lib/netapi/netapi.db"  # NETAPI_DB: the SQLite shorthand
    db_url: str = ""  # NETAPI_DB_URL: sqlite:////path, mysql://..., postgresql://... (wins over NETAPI_DB)
    shutdown_timeout: float | None = None  # NETAPI_SHUTDOWN_TIMEOUT; None: wait for all work
    access_log: bool = False  # NETAPI_ACCESS_LOG=1: one line per request on stderr
    broken_health: bool = False  # NETAPI_BROKEN_HEALTH=1: /healthcheck fails (a bad release, for rollback demos)
    fail_migration: frozenset[str] = frozenset()  # NETAPI_FAIL_MIGRATION=expand[,...]: those phases fail (tests)

    @property
    def database_url(self) -> str:
        """The database to use: NETAPI_DB_URL, else the SQLite file NETAPI_DB."""
        return self.db_url or sqlite_url(self.db_path)

    @property
    def major(self) -> int:
        """The major version number; behaviour differences between versions key on it."""
        try:
            return int(self.version.split(".", 1)[0])
        except ValueError:
            return 1


def from_env(env: dict[str, str] | None = None) -> Config:
    """The configuration the environment asks for; ConfigError names the bad variable."""
    env = dict(os.environ if env is None else env)
    defaults = Config()
    port_text = env.get("HITLESS_PORT", "") or str(defaults.port)
    try:
        port = int(port_text)
        if not 0 <= port <= 65535:
            raise ValueError
    except ValueError:
        raise ConfigError(f"HITLESS_PORT must be a port number, not {port_text!r}") from None
    timeout_text = env.get("NETAPI_SHUTDOWN_TIMEOUT", "").strip()
    timeout = None
    if timeout_text:
        try:
            timeout = float(timeout_text)
            if timeout < 0:
                raise ValueError
        except ValueError:
            raise ConfigError(f"NETAPI_SHUTDOWN_TIMEOUT must be seconds >= 0, not {timeout_text!r}") from None
    db_url = env.get("NETAPI_DB_URL", "").strip()
    if db_url:
        try:
            parse_url(db_url)
        except UrlError as exc:
            raise ConfigError(f"NETAPI_DB_URL: {exc}") from None
    fail = frozenset(p.strip().lower() for p in env.get("NETAPI_FAIL_MIGRATION", "").split(",") if p.strip())
    return Config(
        version=env.get("NETAPI_VERSION", "").strip() or defaults.version,
        bind=env.get("NETAPI_BIND", "").strip() or defaults.bind,
        port=port,
        db_path=env.get("NETAPI_DB", "").strip() or defaults.db_path,
        db_url=db_url,
        shutdown_timeout=timeout,
        access_log=env.get("NETAPI_ACCESS_LOG", "") in ("1", "true", "yes"),
        broken_health=env.get("NETAPI_BROKEN_HEALTH", "") in ("1", "true", "yes"),
        fail_migration=fail,
    )
