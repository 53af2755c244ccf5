"""Benchmarks: lm."""
