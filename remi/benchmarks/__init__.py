"""Timing tools that size the profiles and check ReMI's speed claim (results in BENCHMARKS.md)."""
