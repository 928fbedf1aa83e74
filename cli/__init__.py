"""The `interop` command line: one Typer app with a sub-command group per area."""
