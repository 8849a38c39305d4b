# Quick start: `make demo` stylizes the built-in samples, `make test` runs every check.
# Both set up .venv first (scripts/bootstrap.sh).
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup demo test lint-py38 test-py38 typecheck doctor clean

setup:
	@VENV=$(VENV) scripts/bootstrap.sh

# The bundled default model on scikit-image's sample photos, four styles: outputs/demo/sheet.png.
DEMO_STYLES := sample:hubble_deep_field sample:ihc sample:retina sample:brick
demo: setup
	$(VENV)/bin/infusionnet stylize --style $(DEMO_STYLES) --grid --sheet --output outputs/demo

# runtime/ must stay importable on Jetson's Python 3.8 (JetPack 5).
lint-py38: setup
	$(VENV)/bin/vermin --target=3.8- --no-tips --violations --eval-annotations runtime/

# TensorRT cannot run here: its glue is type-checked against TensorRT 10.13's stubs instead
# (tensorrt-stubs; settings and the stub patches in setup.cfg's [mypy] sections).
typecheck: setup
	@if $(PY) -c 'import sys; sys.exit(sys.version_info < (3, 10))'; then $(PY) -m mypy; \
	else echo "typecheck skipped: the TensorRT stubs need Python 3.10+"; fi

# The suite runs in TEST_WORKERS processes (pytest-xdist), one compute thread each: on the 2-core
# machine 5.4 minutes (6.7 in CI's fresh clone) against 10.0-10.2 in one process, and 8.6 with two
# processes of two threads each (they fight over the cores). --dist loadfile keeps a file's tests, and so its module-scoped
# exports, in one process. The OpenVINO tests run in a process of their own: in one process with
# the rest of the suite, the next test (test_packaging) crashed with a segfault after them, twice.
TEST_WORKERS ?= 2
test: setup lint-py38 typecheck
	OMP_NUM_THREADS=1 $(PY) -m pytest -q -rs -n $(TEST_WORKERS) --dist loadfile --ignore=tests/test_openvino_backend.py
	$(PY) -m pytest -q -rs tests/test_openvino_backend.py

# The runtime's tests on Python 3.8 with JetPack 5's numpy, OpenCV and ONNX Runtime, no torch
# (skipped, with the reason, where no Python 3.8 interpreter is found).
test-py38: setup
	MAIN_PY=$(PY) scripts/test-py38.sh

doctor: setup
	$(VENV)/bin/infusionnet doctor

clean:
	rm -rf outputs .pytest_cache build *.egg-info .venv-py38
