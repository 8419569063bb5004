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

test: $(STAMP)
	$(PY) -m pytest -q

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis
