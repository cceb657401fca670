"""`python -m hitless` is the `hitless` command."""

from hitless.cli.main import main

main()
