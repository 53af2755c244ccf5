"""The benchmark suite of xlstm-seq: runs that measure the library beside its peers and write the pages under
benchmarks/ (markdown with command, revision, device, versions and date; one MLflow run each).

One subpackage per area (kernels, forecasting, rl, lm, synthetic). The library never imports this package; the
``xlstm-seq`` command reaches it lazily, inside the benchmark commands.
"""
