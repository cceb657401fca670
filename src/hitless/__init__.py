"""hitless: upgrade containerized services with zero downtime as users see it."""

__version__ = "0.1.0"
