"""Recurrent xLSTM policies for stable-baselines3 (issue 6). The package exists so the import layout is fixed."""
