# The two commands a newcomer needs: `make demo` and `make test`. Both set themselves up.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
UV_VERSION := $(shell sed -n 's/^uv==//p' constraints.txt)
export AIRFLOW_HOME ?= $(CURDIR)/build/airflow

.PHONY: install test lint unit demo bench sandbox constraints clean

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install -q --disable-pip-version-check "uv==$(UV_VERSION)"
	$(BIN)/uv pip install -q --python $(BIN)/python -c constraints.txt -e ".[test]"
	@touch $(STAMP)

install: $(STAMP)

lint: install
	$(BIN)/ruff check airflow_provider_prefs tests dags_examples benchmarks scripts
	$(BIN)/mypy

unit: install
	$(BIN)/python -m pytest

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

clean:
	rm -rf $(VENV) build .pytest_cache .mypy_cache .ruff_cache
