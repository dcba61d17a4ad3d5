# fusion_perception: the two commands a newcomer needs are `make demo` and `make test`.
# Both (and `make bench`) first run `make setup`, which is quick when nothing changed.

VENV   ?= .venv
PY     := $(VENV)/bin/python
PYTEST_ARGS ?=
# `make setup CUDA=12.6`: a torch and spconv built for CUDA 12.6, and the CUDA ops (cpu: CPU
# builds; empty: keep the torch that is there, spconv matching it).
CUDA ?=
export CUDA

.PHONY: setup demo test bench info clean reliability

setup:
	@bash .ci/setup.sh

demo: setup
	$(VENV)/bin/perception demo

test: setup
	$(PY) -m pytest $(PYTEST_ARGS)

# The reliability suite in full: 10,000 inputs per fuzz target, a 10,000-frame soak, a
# 1,000-frame soak and a 3x-rate load through the ROS nodes, the fault tests, and pip-audit of
# the pinned requirements. Counts go to outputs/reliability/ (quoted in docs/reliability.md).
# CI runs the same tests in their short form as part of `make test`.
RELIABILITY_OUT ?= outputs/reliability
reliability: setup
	@mkdir -p $(RELIABILITY_OUT)
	PERCEPTION_FUZZ_EXAMPLES=10000 PERCEPTION_SOAK_FRAMES=10000 \
	PERCEPTION_FUZZ_REPORT=$(RELIABILITY_OUT)/fuzz.json \
	PERCEPTION_SOAK_REPORT=$(RELIABILITY_OUT)/soak.json \
	PERCEPTION_NODE_SOAK_FRAMES=1000 PERCEPTION_NODE_LOAD_FRAMES=200 \
	PERCEPTION_NODE_SOAK_REPORT=$(RELIABILITY_OUT)/node_soak.json \
	PERCEPTION_NODE_FAULTS_REPORT=$(RELIABILITY_OUT)/node_faults.json \
	$(PY) -m pytest tests/reliability -p no:cacheprovider $(PYTEST_ARGS)
	@# --strict: a dependency that could not be looked up fails the audit, so an audit that
	@# reached no vulnerability database is never reported as clean.
	$(VENV)/bin/pip-audit --strict --no-deps --disable-pip --progress-spinner off \
	  $(foreach f,core build ros nodeps,-r .ci/requirements-$(f).txt) \
	  -f json -o $(RELIABILITY_OUT)/pip-audit.json
	@echo "reliability: reports in $(RELIABILITY_OUT)/"

bench: setup
	$(PY) -m benchmarks.run

info: setup
	$(VENV)/bin/perception info

clean:
	rm -rf build perception/_C*.so *.egg-info
