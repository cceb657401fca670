"""netapi: a small Neutron-like network API, the demo service hitless upgrades.

Standard library only, except the database driver a MariaDB (PyMySQL) or PostgreSQL
(psycopg2) URL needs; SQLite needs nothing but a python3 interpreter.
Run it as `python3 -m netapi` from the directory that holds this package.
"""

__all__ = ["main"]


def main() -> int:
    """Run the service until SIGTERM or SIGINT; returns the process exit status."""
    from .server import main as server_main

    return server_main()
