# synthct developer commands. `make demo` and `make test` work on a fresh clone (they create .venv first).
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: venv dose-venv demo demo-cbct demo-dose test lint bench container clean

$(BIN)/synthct: pyproject.toml requirements.txt
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(BIN)/synthct

venv: $(BIN)/synthct

# The dose extra (pyRadPlan + pymedphys, docs/dose.md): dev/evaluation venv only, never the grand-challenge image.
$(VENV)/.dose-installed: $(BIN)/synthct requirements-dose.txt requirements-dose-nodeps.txt
	$(BIN)/pip install --quiet -r requirements-dose.txt
	$(BIN)/pip install --quiet --no-deps -r requirements-dose-nodeps.txt
	touch $@

dose-venv: $(VENV)/.dose-installed

demo: venv
	$(BIN)/synthct demo --out demo_output

demo-cbct: venv
	$(BIN)/synthct demo --task cbct --out demo_output_cbct

demo-dose: dose-venv
	$(BIN)/synthct demo --task cbct --dose --out demo_output_dose

test: dose-venv
	$(BIN)/python -m pytest -q

lint: venv
	$(BIN)/ruff check src tests benchmarks scripts process.py
	$(BIN)/mypy

bench: venv
	$(BIN)/python benchmarks/inference_speed.py

container: venv
	bash .ci/container.sh

clean:
	rm -rf demo_output demo_output_cbct demo_output_dose build .pytest_cache
