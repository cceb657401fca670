"""Benchmarks, run by hand from the repository's root as modules (`python3 -m benchmarks.proxy`):
that is what makes their siblings (`benchmarks.proxy`) and the tests' helpers (`tests.support`)
importable beside the installed `hitless` and `hitless_demo`. See benchmarks/README.md."""
