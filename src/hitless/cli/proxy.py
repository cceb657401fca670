"""`hitless proxy`: run the proxy in the foreground (its command line lives with the proxy)."""

from __future__ import annotations

from hitless.proxy.cli import register, run

__all__ = ["register", "run"]
