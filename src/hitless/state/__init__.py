"""Durable state: generations, deployments and the last known good, in SQLite."""
