# Fresh-machine set-up is part of every target: each creates/updates its own virtualenv.
# Every pip call goes through constraints.txt, which pins torch to the local CPU wheel.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip install -c constraints.txt
STAMP := $(VENV)/.installed

.PHONY: install demo test test-fast system-deps clean

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

test: $(STAMP) system-deps
	@url=$$(bash .ci/pg-start); HUMAN_EVAL_PG_URL=$$url $(PY) -m pytest -q --timeout=900; rc=$$?; bash .ci/pg-stop; exit $$rc

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow and not browser"

clean:
	rm -rf $(VENV) runs .pytest_cache
