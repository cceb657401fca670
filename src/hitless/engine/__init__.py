"""The engine: plan (pure diff), and the steps that carry a plan out through the runtime."""
