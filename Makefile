# fusion_perception: the two commands a newcomer needs are `make demo` and `make test`.
# Both (and `make bench`) first run `make setup`, which is quick when nothing changed.

VENV   ?= .venv
PY     := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: setup demo test bench info clean

setup:
	@bash .ci/setup.sh

demo: setup
	$(VENV)/bin/perception demo

test: setup
	$(PY) -m pytest $(PYTEST_ARGS)

bench: setup
	$(PY) -m benchmarks.run

info: setup
	$(VENV)/bin/perception info

clean:
	rm -rf build perception/_C*.so *.egg-info
