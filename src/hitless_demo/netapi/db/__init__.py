"""All of netapi's database code: URLs and dialects, the schema's revisions, the network queries.

    dialect.py  what differs between SQLite, MariaDB/MySQL and PostgreSQL (no ORM)
    schema.py   revisions by phase (expand / contract / offline), which version runs on which
    store.py    the connection pool and each version's network queries
"""

from .dialect import DatabaseUrl, UrlError, dialect_for, parse_url, sqlite_url
from .schema import PHASES, SchemaError
from .store import FILTERS, Database, neutron_time, now, parse_bool, stamp

__all__ = [
    "FILTERS", "PHASES", "Database", "DatabaseUrl", "SchemaError", "UrlError", "dialect_for",
    "neutron_time", "now", "parse_bool", "parse_url", "sqlite_url", "stamp",
]
