"""Benchmarks (`ivtuning bench TARGET`): print figures, write JSON. One module a target,
each exposing `register(subparsers)`."""
