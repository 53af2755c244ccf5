# Two commands on a fresh machine: `make demo` and `make test`. Both create .venv and install into it.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
# On CPU machines pin the local CPU wheel so that pip never resolves a multi-GB CUDA build of torch.
# Override on a GPU machine, e.g. `make test TORCH_SPEC='torch==2.11.0'`.
TORCH_SPEC ?= torch==2.13.0
EXTRAS ?= dev,triton,forecast,rl,lm
# The benchmark suite (bench/, a distribution of its own) and its peers' extras: rl brings sb3-contrib.
BENCH_EXTRAS ?= rl
# The data root: the shared offline mirror where it exists, else the default cache.
SHARED_DATA := $(abspath ../shared/data)
ifneq ($(wildcard $(SHARED_DATA)),)
export XLSTM_SEQ_DATA ?= $(SHARED_DATA)
endif
export MPLBACKEND ?= Agg

.PHONY: venv demo test docs lint bench compare clean

$(BIN)/.installed: pyproject.toml bench/pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip setuptools wheel
	$(BIN)/python -m pip install -q "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q -e ".[$(EXTRAS)]" -e "./bench[$(BENCH_EXTRAS)]"
	touch $@

venv: $(BIN)/.installed

demo: venv
	$(BIN)/xlstm-seq demo

test: venv
	$(BIN)/python -m pytest -q

# The docs site: docs/ and mkdocs.yml -> build/site (strict: a warning fails the build).
docs: venv
	$(BIN)/mkdocs build --strict

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python tools/check_layers.py

bench: venv
	$(BIN)/xlstm-seq kernels bench --device cpu

# AirPassengers and M4 beside neuralforecast and statsforecast; statsforecast pins pandas < 3, so the peers get their
# own venv.
compare:
	$(MAKE) venv VENV=.venv-compare EXTRAS=forecast BENCH_EXTRAS=forecast,compare
	.venv-compare/bin/xlstm-seq forecast airpassengers --config configs/forecasting/air_passengers.yaml
	.venv-compare/bin/xlstm-seq forecast m4 --config configs/forecasting/m4.yaml

clean:
	rm -rf $(VENV) .venv-compare build dist *.egg-info
