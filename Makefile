# Quick start: `make demo` stylizes the built-in samples, `make test` runs every check.
# Both set up .venv first (scripts/bootstrap.sh).
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup demo test lint-py38 typecheck clean

setup:
	@VENV=$(VENV) scripts/bootstrap.sh

demo: setup
	$(VENV)/bin/infusionnet stylize --grid --output outputs/demo

# runtime/ must stay importable on Jetson's Python 3.8 (JetPack 5).
lint-py38: setup
	$(VENV)/bin/vermin --target=3.8- --no-tips --violations --eval-annotations runtime/

# TensorRT cannot run here: its glue is type-checked against TensorRT 10.13's stubs instead
# (tensorrt-stubs; settings and the stub patches in setup.cfg's [mypy] sections).
typecheck: setup
	@if $(PY) -c 'import sys; sys.exit(sys.version_info < (3, 10))'; then $(PY) -m mypy; \
	else echo "typecheck skipped: the TensorRT stubs need Python 3.10+"; fi

test: setup lint-py38 typecheck
	$(PY) -m pytest -q -rs

clean:
	rm -rf outputs .pytest_cache build *.egg-info
