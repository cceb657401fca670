"""Runtimes: where instances run (Docker containers or local processes), behind one interface."""
