# Quickstart: `make demo` then `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test matrix lint bench docs typecheck dist wheel-check clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[dev,interop]"
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/repgrad

test: $(STAMP)
	$(PY) -m pytest -n 2 --durations=15 tests notebooks --nbmake

# The whole statistical contract over every estimator x option x family x f x derivative order
# (tests/test_matrix*.py; make test runs a fixed sample of it). Run by .ci/run after make test.
matrix: $(STAMP)
	REPGRAD_MATRIX=full $(PY) -m pytest -n 2 -q --durations=10 tests/test_matrix.py tests/test_matrix_graph.py

lint: $(STAMP)
	$(VENV)/bin/ruff check .

# Full benchmark runs (tens of minutes on 2 cores); each script also takes --small.
BENCHMARKS := overhead flipout control_variates binary_vae peers sharding numpyro_svi discrete_variance selection higher_order measure_valued_memory

bench: $(STAMP)
	$(PY) -m pip install -q -e ".[dev,bench]"
	for b in $(BENCHMARKS); do $(PY) benchmarks/$$b.py || exit 1; done

# The documentation site (mkdocs.yml), built into site/ with warnings as errors: the notebooks run
# (REPGRAD_SMALL=1, a few minutes) and MathJax is fetched from npm into the site. Then
# tests/test_site.py checks the result: every notebook page shows its figures, and headless
# chromium (apt-get install chromium) loads pages offline, typeset, with no console error.
DOCS_STAMP := $(VENV)/.docs-stamp

$(DOCS_STAMP): $(STAMP)
	$(PY) -m pip install -q -e ".[dev,interop,docs]"
	touch $(DOCS_STAMP)

docs: $(DOCS_STAMP)
	PYTHONPATH=$(CURDIR) NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict
	REPGRAD_SITE_CHECK=1 $(PY) -m pytest -q -p no:cacheprovider tests/test_site.py

# pyright, basic mode, on the public modules ([tool.pyright] in pyproject.toml).
typecheck: $(STAMP)
	$(VENV)/bin/pyright

# An sdist and a wheel built from it, in dist/.
dist: $(STAMP)
	rm -rf dist
	$(PY) -m build --quiet

# The wheel installed into a fresh virtual environment: import, `repgrad --version`, one gradient.
wheel-check: dist
	PYTHON=$(PYTHON) bash .ci/wheel_check

clean:
	rm -rf $(VENV) .pytest_cache *.egg-info site dist build
