"""The admin API: what one process answers, its metrics, and the client the engine drives it with."""
