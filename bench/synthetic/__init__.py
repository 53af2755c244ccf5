"""Benchmarks: synthetic."""
