# Everything a fresh clone needs: `make test` and `make demo` set up what they use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
UV := $(VENV)/bin/uv
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: test test-busy test-unit test-compat compat-lock dist demo demo-keep lint docs bench soak setup chromium postgresql clean

setup: $(VENV)/.installed node_modules/.installed

# The virtualenv is reused while pyproject.toml and constraints.txt are unchanged. Bytecode is
# compiled at install: PYTHONDONTWRITEBYTECODE (above) keeps __pycache__ out of the checkout, and
# without .pyc files every Airflow process (each task, each component) compiles its imports again,
# seconds per process, and a trigger's first imports hold the GIL long enough to stall the
# triggerer's event loop.
$(VENV)/.installed: pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	test -x $(UV) || $(PY) -m pip install --quiet --disable-pip-version-check "uv==0.13.9"
	$(UV) pip install --quiet --compile-bytecode --python $(PY) -c constraints.txt -e '.[dev]'
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# Debian's Chromium for the browser test in tests/e2e (apt-get; a no-op once installed).
chromium:
	sh devtools/install_chromium.sh

# Debian's PostgreSQL server for the e2e PostgreSQL stack (apt-get; a no-op once installed). The
# suite starts and removes a throw-away cluster of its own (devtools/postgres.py).
postgresql:
	sh devtools/install_postgresql.sh

# The whole suite on TEST_WORKERS pytest-xdist workers: by module, the e2e modules by Airflow stack
# (tests/xdist_support.py). Most tests wait on emulators, visibility timeouts and Airflow's loops,
# so more workers than cores pay; TEST_WORKERS=0 runs it in this one process.
TEST_WORKERS ?= 5
test: setup chromium postgresql
	$(PY) -m pytest -n $(TEST_WORKERS) $(PYTEST_ARGS)

# make test on a busy machine, as users' CI runners are: one busy Python loop per core
# (devtools/cpu_hog.py; HOG_PROCESSES=n for another count) runs beside it, started before and
# stopped after. Not part of make test; the suite must pass both ways.
test-busy: setup chromium postgresql
	$(PY) -m devtools.cpu_hog $(if $(HOG_PROCESSES),--processes $(HOG_PROCESSES)) -- $(MAKE) test

# The I/O-free core alone: no emulator, Airflow database or browser (seconds).
test-unit: $(VENV)/.installed
	$(PY) -m pytest -m unit -p no:cacheprovider $(PYTEST_ARGS)

# The version matrix: one virtualenv per supported Airflow minor (.work/compat/<minor>, reused
# while its constraint file is unchanged), each running the compatibility tier (pytest -m compat)
# against this checkout. COMPAT_MINORS=3.1 picks minors.
COMPAT_MINORS ?= 3.0 3.1 3.2 3.3
COMPAT_VENVS := .work/compat
test-compat: setup $(foreach m,$(COMPAT_MINORS),$(COMPAT_VENVS)/$(m)/.installed)
	$(PY) -m devtools.compat run $(COMPAT_MINORS)

$(COMPAT_VENVS)/%/.installed: compat/constraints-%.txt pyproject.toml $(VENV)/.installed
	test -x $(COMPAT_VENVS)/$*/bin/python || UV_PYTHON_DOWNLOADS=never $(UV) venv --quiet --python $(PYTHON) $(COMPAT_VENVS)/$*
	$(UV) pip install --quiet --compile-bytecode --python $(COMPAT_VENVS)/$*/bin/python -c compat/constraints-$*.txt -e '.[test]'
	touch $@

# Re-resolve compat/constraints-<minor>.txt (see devtools/compat.py for how each is chosen).
compat-lock: $(VENV)/.installed
	$(PY) -m devtools.compat lock $(COMPAT_MINORS)

# sdist and wheel into dist/, built from a clean sdist with the pinned hatchling, then checked.
dist: $(VENV)/.installed
	rm -rf dist
	$(UV) build --quiet --build-constraint constraints.txt --out-dir dist
	$(VENV)/bin/twine check --strict dist/*

demo: setup
	$(PY) -m devtools.demo $(DEMO_ARGS)

demo-keep: setup
	$(PY) -m devtools.demo --keep-running $(DEMO_ARGS)

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check fluke_airflow
	$(VENV)/bin/mypy
	$(PY) -m devtools.signatures --check

docs: setup
	$(VENV)/bin/sphinx-build -W --keep-going -b html docs docs/_build/html

bench: setup
	$(PY) -m bench $(BENCH_ARGS)

# The chaos suite at soak size (make test runs it with 100 messages per scenario).
SOAK_MESSAGES ?= 3000
soak: setup
	FLUKE_CHAOS_MESSAGES=$(SOAK_MESSAGES) $(PY) -m pytest tests/chaos -o timeout=0 $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) node_modules .work docs/_build
