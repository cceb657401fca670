"""One worker's traffic path: client connections and their requests, the frontends they arrive
on, the pool of backends, the hold queue, and the upstream connections."""
