"""Benchmarks of the kernels and the core: ``xlstm-seq kernels bench``.

* :mod:`.timing`: median wall-clock time, peak memory in a fresh worker process (CPU);
* :mod:`.device_timing`: time and peak memory of one call on the device its tensors live on;
* :mod:`.kernel_report`: the table, header and MLflow run shared by the GPU kernel benchmarks;
* :mod:`.core_cpu` (``--op core``), :mod:`.mlstm_gpu` (``--op mlstm``), :mod:`.slstm_gpu` (``--op slstm``).

Speed is measured here, by benchmark commands that write a markdown table (command, revision, device, versions and
date beside the numbers) and log one MLflow run, never by timed tests.
"""
