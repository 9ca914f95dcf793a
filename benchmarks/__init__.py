"""Benchmarks: scripts that compare methods side by side and print a table."""
