# Fresh-machine set-up is part of every target: each creates/updates its own virtualenv.
# Every pip call goes through constraints.txt, which pins torch to the local CPU wheel.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip install -c constraints.txt
STAMP := $(VENV)/.installed

.PHONY: install demo test test-fast browser-deps clean

$(STAMP): pyproject.toml constraints.txt
	python3 -m venv $(VENV)
	$(PIP) torch==2.13.0
	$(PIP) -e ".[test,browser]"
	touch $(STAMP)

install: $(STAMP)

# System Chromium for the real-browser test (Playwright drives it; it cannot download browsers here).
browser-deps:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium chromium-driver >/dev/null; \
	  else echo "chromium missing and not root: browser tests will be skipped"; fi; }

demo: $(STAMP)
	$(VENV)/bin/imagen-bench demo --out runs/demo

test: $(STAMP) browser-deps
	$(PY) -m pytest -q --timeout=900

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow and not browser"

clean:
	rm -rf $(VENV) runs .pytest_cache
