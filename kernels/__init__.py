"""Kernels: pure functions on tensors, one folder per op. Imports nothing from the rest of xlstm_seq.

* :mod:`xlstm_seq.kernels.mlstm`: ``mlstm``, ``mlstm_step`` (reference forms in ``mlstm.naive``).
* :mod:`xlstm_seq.kernels.slstm`: ``slstm``, ``slstm_step`` (reference in ``slstm.naive``).
* :mod:`xlstm_seq.kernels.registry`: backend names (``auto``, ``torch``, ``triton``, ``cuda``) and their resolution.
* :mod:`xlstm_seq.kernels.validation`: the input checks every entry point shares.
"""
