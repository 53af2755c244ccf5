"""Benchmarks: forecasting."""
