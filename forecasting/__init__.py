"""Forecasters for pandas long-format frames (issue 5). The package exists so the import layout is fixed."""
