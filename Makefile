# Two commands: `make run` (the whole pipeline on the embedded default) and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# DVC stages call `churn ...`: put the project's venv first on PATH for every recipe.
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: run test install lint clean browser spark

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/dvc repro
	@echo ""
	@echo "Done. Reports:"
	@echo "  driver report (open in a browser): reports/drivers/index.html"
	@ls -1 reports/*.json reports/*.md reports/*.csv 2>/dev/null | sed 's/^/  /' || true
	@echo "  scores: data/scores/scores.parquet (and .csv); alerts: data/alerts/alerts.csv"
	@echo "  data: data/interim/ (validated tables), data/quarantine/ (rejected rows)"
	@echo "  MLflow: $(BIN)/mlflow ui --backend-store-uri sqlite:///mlflow.db"

# Headless Chromium + chromedriver for tests/test_report_browser.py (Debian packages; apt-get
# needs root, sudo is used otherwise). Installed only when missing.
SUDO := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)
browser:
	@command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1 || { \
		$(SUDO) apt-get update && \
		$(SUDO) apt-get install -y --no-install-recommends chromium chromium-driver; }

# Spark for the engine-parity tests (tests/features/test_spark_parity.py): pyspark from PyPI through
# the `spark` extra, Java 17 from Debian. Each is installed only when missing.
spark: $(STAMP)
	@$(BIN)/python -c "import pyspark" 2>/dev/null || \
		$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev,spark]'
	@command -v java >/dev/null 2>&1 || { \
		$(SUDO) apt-get update && \
		$(SUDO) apt-get install -y --no-install-recommends openjdk-17-jre-headless; }

test: $(STAMP) browser spark
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -n 2 --dist loadfile -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/lint-imports

clean:
	rm -rf data reports/*.json reports/*.md artifacts mlruns mlflow.db
