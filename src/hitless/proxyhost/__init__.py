"""Where the project's proxy runs and what brings it back when it dies.

One host per runtime: on Docker a container with restart policy `unless-stopped` (so a crash,
a dockerd restart or a reboot brings it back with no command); on local processes a small
supervisor that restarts it at once. `hitless.engine.proxyctl.ProxyControl` is the only user.

This package's `__init__` imports nothing: `entry` and `supervisor` run with the standard
library alone (inside the proxy image, and detached from any command).
"""
