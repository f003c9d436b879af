# The two commands of README.md. Each bootstraps .venv by itself (idempotent, quick when done).
PY := .venv/bin/python

.PHONY: bootstrap test demo lint
bootstrap:
	@bash scripts/bootstrap.sh

lint: bootstrap
	$(PY) -m ruff check .

test: lint
	$(PY) -m pytest -q tests

demo: bootstrap
	$(PY) tools/demo.py
