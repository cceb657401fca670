"""Data in upgrades: snapshots before any change, restored on request."""
