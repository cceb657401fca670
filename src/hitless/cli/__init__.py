"""The `hitless` command line: one module per command group."""
