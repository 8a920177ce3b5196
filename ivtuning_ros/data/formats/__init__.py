"""Readers for the real RGB-T dataset layouts; each builds a `PairDataset` of records."""
