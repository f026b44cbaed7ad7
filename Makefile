# The two commands a newcomer needs: `make demo` and `make test`. Both set themselves up.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
UV_VERSION := $(shell sed -n 's/^uv==//p' constraints.txt)
export AIRFLOW_HOME ?= $(CURDIR)/build/airflow

.PHONY: install test lint unit e2e chromium demo bench sandbox constraints compat constraints-airflow2 clean

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install -q --disable-pip-version-check "uv==$(UV_VERSION)"
	$(BIN)/uv pip install -q --python $(BIN)/python -c constraints.txt -e ".[test]"
	@touch $(STAMP)

install: $(STAMP)

lint: install
	$(BIN)/ruff check airflow_provider_prefs tests dags_examples benchmarks scripts
	$(BIN)/mypy

unit: install chromium
	$(BIN)/python -m pytest

# The browser check drives Debian's Chromium through Playwright (never `playwright install`).
CHROMIUM ?= /usr/bin/chromium
chromium:
	@test -x $(CHROMIUM) || { apt-get update -q && apt-get install -y -q chromium; }

# Only the end-to-end suite (a real Airflow deployment + the browser check), for quick iteration.
e2e: install chromium
	$(BIN)/python -m pytest tests/e2e

# pytest exits 5 when it collected nothing; make treats that as a failure, so CI never passes empty.
test: lint unit

demo: install
	$(BIN)/python scripts/demo.py

bench: install
	$(BIN)/python benchmarks/bench.py

sandbox: install
	$(BIN)/python -m airflow_provider_prefs.sandbox --port 8765

constraints: install
	@{ echo "# Pinned versions for 'make' (Airflow 3.3.2, Python 3.11). Regenerate with 'make constraints'."; \
	  $(BIN)/uv pip freeze --python $(BIN)/python | grep -v -E "^(-e |airflow-provider-prefs|pip==|setuptools==)"; } > constraints.txt

# The same suite on Airflow 2.10 (its own venv and Airflow home); not part of `make test`.
VENV2  := .venv-airflow2
STAMP2 := $(VENV2)/.installed-stamp

$(STAMP2): pyproject.toml constraints-airflow2.txt | install
	@test -x $(VENV2)/bin/python || $(BIN)/uv venv -q --python $(PYTHON) $(VENV2)
	$(BIN)/uv pip install -q --python $(VENV2)/bin/python -c constraints-airflow2.txt "apache-airflow==2.10.5" -e ".[test]"
	@touch $(STAMP2)

compat: $(STAMP2)
	PREFS_TEST_AIRFLOW_HOME=$(CURDIR)/build/airflow2-test $(VENV2)/bin/python -m pytest -rs

constraints-airflow2: $(STAMP2)
	@{ echo "# Pinned versions for 'make compat' (Airflow 2.10.5, Python 3.11). Regenerate with 'make constraints-airflow2'."; \
	  $(BIN)/uv pip freeze --python $(VENV2)/bin/python | grep -v -E "^(-e |airflow-provider-prefs|pip==|setuptools==)"; } > constraints-airflow2.txt

clean:
	rm -rf $(VENV) $(VENV2) build .pytest_cache .mypy_cache .ruff_cache
