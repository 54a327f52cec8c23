# ModelGate: `make run` starts the whole platform on this machine; `make test` runs the suite.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
PIP_INSTALL := $(PIP) install --quiet --disable-pip-version-check

.PHONY: run test lint bench clean

# The project itself is installed editable, without dependencies (requirements.txt pins
# them), which puts the `modelgate` command in $(VENV)/bin.
$(VENV)/.installed: requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP_INSTALL) -r requirements.txt
	$(PIP_INSTALL) --no-deps -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed requirements-dev.txt
	$(PIP_INSTALL) -r requirements-dev.txt
	touch $@

# Creates the virtualenv, installs, migrates, seeds the demo, starts MLflow, the web
# server (127.0.0.1:8000, PORT overrides) and a worker. Ctrl-C stops everything.
run: $(VENV)/.installed
	$(PY) manage.py run_embedded

$(VENV)/.installed-train: $(VENV)/.installed requirements-train.txt
	$(PIP_INSTALL) -r requirements-train.txt
	touch $@

# Installs what the tests need (with TRAIN_EXTRAS=1 also torch, for the torchrun test)
# and runs the whole suite.
TEST_DEPS := $(VENV)/.installed-dev $(if $(TRAIN_EXTRAS),$(VENV)/.installed-train)
test: $(TEST_DEPS)
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.installed-dev
	$(VENV)/bin/ruff check .

clean:
	rm -rf var test-output
