# Evalgate developer commands. `make demo` and `make test` set up everything they need.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint format serve worker migrate install clean bench

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

migrate: $(STAMP)
	DEBUG=$${DEBUG:-true} $(PY) manage.py migrate --noinput

## demo: load examples/demo/, gate three candidates through the job path, print the verdicts
demo: migrate
	DEBUG=$${DEBUG:-true} $(PY) manage.py demo

## test: the whole suite (PostgreSQL, Redis and rqworker integration tests included)
test: $(STAMP)
	bash scripts/test.sh

## bench: benchmarks printing ratios against baselines measured in the same run
bench: $(STAMP)
	cd benchmarks && ../$(PY) run_all.py

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

## serve: the admin and the API on http://127.0.0.1:$(PORT)/ (make serve PORT=8001 for another port)
serve: PORT ?= 8000
serve: migrate
	DEBUG=$${DEBUG:-true} $(PY) manage.py runserver 127.0.0.1:$(PORT)

worker: $(STAMP)
	DEBUG=$${DEBUG:-true} $(PY) manage.py rqworker default

clean:
	rm -rf $(VENV) var *.egg-info
