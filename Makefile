# pmaint: `make demo` runs the whole pipeline locally, `make test` runs the test suite.
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

# PyTorch, CPU build by default (pip's default index serves the CUDA build on Linux x86_64,
# several GB). TORCH_INDEX names a package index that has the CPU build (PyTorch publishes one;
# see README); without it pip looks where it is configured to. If no CPU build is found there,
# the default build is installed instead, with a note.
TORCH_VERSION ?= 2.13.0
TORCH_INDEX   ?=

.PHONY: install system demo test lint format bench clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "torch==$(TORCH_VERSION)+cpu" \
	    $(if $(TORCH_INDEX),--extra-index-url $(TORCH_INDEX)) 2>/dev/null || { \
	  echo "note: no CPU build of torch $(TORCH_VERSION) found; installing the default build" \
	       "(CUDA on Linux x86_64). For the CPU build: make TORCH_INDEX=URL install"; \
	  $(PY) -m pip install -q "torch==$(TORCH_VERSION)"; }
	$(PY) -m pip install -q -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

# What the integration tests start or drive: InfluxDB 1.x, VictoriaMetrics (InfluxDB v2 write
# API), headless Chromium (the fleet page).
system:
	@if ! command -v influxd >/dev/null || ! command -v victoria-metrics >/dev/null \
	    || ! command -v chromium >/dev/null || ! command -v stunnel4 >/dev/null; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    --no-install-recommends influxdb victoria-metrics chromium stunnel4 >/dev/null; \
	fi

demo: install
	$(VENV)/bin/pmaint demo

test: install system
	$(PY) -m pytest

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: install system
	$(PY) -m benchmarks

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
