"""Messages between the proxy's own processes (master, fork server, workers)."""
