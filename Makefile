# Fresh-machine set-up is part of every target: each creates/updates its own virtualenv.
# Every pip call goes through constraints.txt, which pins torch to the local CPU wheel.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip install -c constraints.txt
STAMP := $(VENV)/.installed

.PHONY: install demo test test-fast test-slow system-deps clean perf-env perf gpu-check

$(STAMP): pyproject.toml constraints.txt
	python3 -m venv $(VENV)
	$(PIP) torch==2.13.0
	$(PIP) -e ".[test,browser]"
	touch $(STAMP)

install: $(STAMP)

# Debian packages the tests use: Chromium for the real-browser test (Playwright drives it; it cannot
# download browsers here) and PostgreSQL for the human_eval PostgreSQL test (.ci/pg-start runs a
# throwaway server). Without root they are skipped, and the tests that need them say so.
system-deps:
	@{ command -v chromium >/dev/null 2>&1 && ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; } || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium chromium-driver postgresql >/dev/null; \
	  else echo "chromium/postgresql missing and not root: those tests will be skipped"; fi; }

demo: $(STAMP)
	$(VENV)/bin/imagen-bench demo --out runs/demo

# The suite runs in pytest-xdist workers, one per core (at most 4), each test file whole in one worker
# (its module fixtures built once); tests/conftest.py gives each worker its share of the cores.
# On 2 cores: 6 min instead of 10 serially. `-n0` runs it in one process.
XDIST := -n logical --maxprocesses 4 --dist loadfile

test: $(STAMP) system-deps
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .
	@url=$$(bash .ci/pg-start); HUMAN_EVAL_PG_URL=$$url $(PY) -m pytest -q --timeout=900 $(XDIST); rc=$$?; bash .ci/pg-stop; exit $$rc

test-fast: $(STAMP)
	$(PY) -m pytest -q $(XDIST) -m "not slow and not browser"

# The checks marked `slow` alone, on any CPU (`make test` skips them on AVX2-only CPUs: tests/conftest.py)
test-slow: $(STAMP) system-deps
	@url=$$(bash .ci/pg-start); IMAGEN_BENCH_SLOW=1 HUMAN_EVAL_PG_URL=$$url $(PY) -m pytest -q --timeout=900 $(XDIST) -m slow; rc=$$?; bash .ci/pg-stop; exit $$rc

# Separate benchmark environment for `imagen-bench perf`: the peers (diffusers, lucidrains'
# imagen-pytorch) run there, so their pins never touch the project's venv. imagen-pytorch goes in
# with --no-deps: its install_requires pulls torchvision (a CUDA build on PyPI that cannot import on
# the CPU torch), accelerate, datasets, ...; selfcheck/perf/peers/requirements.txt lists what its Unet needs.
PERF_VENV ?= .perf-venv
PERF_PIP := $(PERF_VENV)/bin/pip install -c constraints.txt
PERF_STAMP := $(PERF_VENV)/.installed

$(PERF_STAMP): constraints.txt selfcheck/perf/peers/requirements.txt
	python3 -m venv $(PERF_VENV)
	$(PERF_PIP) torch==2.13.0
	$(PERF_PIP) -r selfcheck/perf/peers/requirements.txt
	$(PERF_PIP) --no-deps imagen-pytorch==2.1.0
	touch $(PERF_STAMP)

perf-env: $(PERF_STAMP)

perf: $(STAMP) $(PERF_STAMP)
	$(VENV)/bin/imagen-bench perf --out perf/

# On a machine with a CUDA GPU: tests/test_cuda.py + perf on CUDA, into gpu-check/ (.ci/gpu-check says what)
gpu-check:
	bash .ci/gpu-check gpu-check

clean:
	rm -rf $(VENV) $(PERF_VENV) runs .pytest_cache
