# Two commands on a fresh machine: `make run` (the whole pipeline on generated sample data) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
SAMPLE_ROWS ?= 200000
DATA_DIR ?= data
# `make bench`: every variant (benchmarks/README.md), DuckDB's at 2M and Spark's at 1M, 3 runs each, and per project
# variant an incremental run, a run with nothing new and a watch batch's latency. 10M and 100M are opt-in
# (SIZES=2m,10m or SIZES=100m; SPARK_SIZES=2m for Spark at 2M); full runs only: BENCH_ARGS=--no-incremental.
SIZES ?= 2m
# The Spark variants run at this size instead (a Spark run takes minutes where DuckDB's takes seconds): one session
# then measures DuckDB at 2M and Spark at 1M, the sizes the targets are set at.
SPARK_SIZES ?= 1m
RUNS ?= 3
# The oldest PySpark the `spark` extra allows (pyproject.toml): `make test-spark-oldest` runs the engine tests on it.
SPARK_OLDEST ?= 3.5
OLDEST_VENV ?= .venv-spark$(SPARK_OLDEST)

.PHONY: run test test-cluster test-fast test-deep test-spark-oldest mutants install install-test bench clean docs

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

install: $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .

install-test: $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[spark,test]'

run: install
	$(BIN)/clickstream generate --rows $(SAMPLE_ROWS) --seed 42 --data-dir $(DATA_DIR) --if-empty
	$(BIN)/clickstream run --data-dir $(DATA_DIR)

# Test files are spread over one worker process per core (pytest-xdist; a file's tests stay on one worker, so
# they share its Spark session and cluster); TEST_WORKERS=0 runs them in this process.
TEST_WORKERS ?= auto

# The run on a Spark standalone cluster (three more JVMs) is its own target, `make test-cluster`, outside CI's time.
test: install-test
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile --ignore=tests/engines/test_cluster.py

test-cluster: install-test
	$(BIN)/python -m pytest tests/engines/test_cluster.py

# The inner loop: no Spark, no browser, no whole-pipeline property runs, no run on the shared dataset.
test-fast: install-test
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile -m "not spark and not slow" -p no:cacheprovider \
		--ignore=tests/report/test_report_browser.py --ignore=tests/test_ledger_property.py

# The property test of the whole ledger with many more examples than the few `make test` runs (minutes, not seconds).
test-deep: install-test
	HYPOTHESIS_PROFILE=deep $(BIN)/python -m pytest tests/test_ledger_property.py

# Each mutant of tests/mutants.py against the fast suite: which small bugs no test would catch (not part of CI).
mutants: install-test
	$(BIN)/python tests/mutants.py

# The oldest PySpark line runs the Spark side of the engine adapter's own tests: the engine, its readers and
# formats, errors, timestamps, boundary values, trimming, CSV copies, the profile, the predictive fit (Arrow on the
# driver) and the warehouse. The models on tiny tables and the whole-pipeline comparisons (differential,
# incremental, hostile input, presets, supplied ids, remapped bronze, cost, cluster) run on the newest line in
# `make test`; they pass on the oldest too, but add many minutes to CI.
test-spark-oldest:
	test -x $(OLDEST_VENV)/bin/python || $(PYTHON) -m venv $(OLDEST_VENV)
	$(OLDEST_VENV)/bin/python -m pip install --quiet -e '.[test]' 'pyspark==$(SPARK_OLDEST).*'
	$(OLDEST_VENV)/bin/python -m pytest tests/engines -m spark -p no:cacheprovider -n $(TEST_WORKERS) --dist loadfile \
		--ignore=tests/engines/test_cluster.py --ignore=tests/engines/test_incremental.py \
		--ignore=tests/engines/test_differential.py --ignore=tests/engines/test_ingestion_engines.py \
		--ignore=tests/engines/test_presets_engines.py --ignore=tests/engines/test_event_identity.py \
		--ignore=tests/engines/test_remap_engines.py --ignore=tests/engines/test_cost_alerts_spark.py \
		--ignore=tests/engines/test_analytics_models.py --ignore=tests/engines/test_attributes.py

# The column tables of docs/DATA_DICTIONARY.md, written from the code (a test fails when they are stale).
docs: install
	$(BIN)/python -m clickstream.report.dictionary docs/DATA_DICTIONARY.md

bench: install-test
	$(BIN)/python benchmarks/run.py --sizes $(SIZES) --spark-sizes $(SPARK_SIZES) --runs $(RUNS) --check $(BENCH_ARGS)

clean:
	rm -rf $(DATA_DIR) logs .pytest_cache $(OLDEST_VENV)
