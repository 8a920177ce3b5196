"""Command-line tools (`ivtuning ...`): thin wiring around the library modules."""
