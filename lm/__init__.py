"""xLSTM and GPT-2 language models (issue 7). The package exists so the import layout is fixed."""
