"""Benchmarks: measurement helpers (:mod:`.timing`) and the benchmark commands' implementations.

Speed is measured here, by benchmark commands that write a markdown table (device, versions, date and the
exact command beside the numbers) and log one MLflow run, never by timed tests.
"""

from xlstm_seq.benchmarking.timing import MemoryResult, Timing, measure_peak_memory, median_time, run_worker

__all__ = ["MemoryResult", "Timing", "measure_peak_memory", "median_time", "run_worker"]
