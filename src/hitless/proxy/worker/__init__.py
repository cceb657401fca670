"""A worker process: its frontends, the admin operations it answers for them, and its main loop
talking to the master."""
