"""Benchmarks: rl."""
