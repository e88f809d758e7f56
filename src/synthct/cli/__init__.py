"""Command-line interface: ``synthct <subcommand>``."""
