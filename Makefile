# Two commands for a fresh clone: `make demo` and `make test`.
# Both create .venv on first use and install graphc into it (editable);
# the stamp file makes the second install a no-op until pyproject.toml changes.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test install clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,examples,dask,onnx,cuda]'
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m graphc demo

# the tests on up to 4 processes (pytest-xdist), a file's tests in one process, so they share
# the functions they compile; `.venv/bin/python -m pytest tests/FILE.py` runs one file alone
test: $(STAMP)
	$(PY) -m pytest -q -n auto --maxprocesses 4 --dist loadfile

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis
