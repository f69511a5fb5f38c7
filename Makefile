# The dev loop. `make test` is what CI runs (see README.md and .ci/run).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: binaries test lint typecheck contracts unit integration faults e2e generate sandbox-up sandbox-down sandbox-status demo demo-down clean bench

# Two distributions: the operator (the wheel and the image hold it alone) and, from devtools/, the
# development tooling it never imports (`modeldeploy-dev sandbox ...`, `modeldeploy-dev demo`).
$(STAMP): pyproject.toml devtools/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	$(BIN)/pip install --quiet -e devtools/
	touch $(STAMP)

venv: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check operator devtools tests benchmarks
	$(BIN)/ruff format --check operator devtools tests benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy

contracts: $(STAMP)
	cd operator && ../$(BIN)/lint-imports --config ../pyproject.toml

unit: $(STAMP)
	$(BIN)/pytest tests/unit -q

integration: $(STAMP)
	$(BIN)/pytest tests/integration -q

# Restarts the sandbox's apiserver and etcd, kills operators, cuts connections: see tests/faults.
faults: $(STAMP)
	$(BIN)/pytest tests/faults -q -m faults

e2e: $(STAMP)
	$(BIN)/pytest tests/e2e -q

# Compile the control plane, helm and the kstatus probe before pytest runs: a cold build takes
# about 10 minutes, far beyond any per-test timeout. Cached, so a warm run takes a second.
binaries: $(STAMP)
	$(BIN)/modeldeploy-dev sandbox build --test-tools

test: lint typecheck contracts binaries unit integration faults e2e

# Not part of `make test`: minutes long, timing figures only (see BENCHMARKS.md). Its own sandbox
# unless MODELDEPLOY_SANDBOX_DIR / MODELDEPLOY_SANDBOX_NET say otherwise.
BENCH_ARGS ?=
BENCH_JSON ?= /tmp/modeldeploy-bench.json
bench: $(STAMP) binaries
	MODELDEPLOY_SANDBOX_DIR=$${MODELDEPLOY_SANDBOX_DIR:-/tmp/modeldeploy-bench-sandbox} \
	MODELDEPLOY_SANDBOX_NET=$${MODELDEPLOY_SANDBOX_NET:-41} \
	$(BIN)/python benchmarks/scale_benchmark.py --json $(BENCH_JSON) $(BENCH_ARGS)

# The operator image without Docker (see README.md): a Python base image made from Debian packages
# with debootstrap (cached), then operator/Dockerfile built by buildah on it. Needs buildah,
# podman, runc and debootstrap from Debian. Not part of `make test`; .ci/run runs image-test after it.
IMAGE ?= localhost/modeldeploy:dev
# crun 1.8 (Debian 12) refuses a hybrid cgroup v1/v2 hierarchy, which runc runs on.
OCI_RUNTIME ?= runc
.PHONY: image image-test
image:
	bash image/build.sh $(IMAGE)

# Runs the built image as the operator (podman, read-only root, UID 10001, the chart's RBAC) against
# its own sandbox unless MODELDEPLOY_SANDBOX_DIR / MODELDEPLOY_SANDBOX_NET say otherwise.
image-test: $(STAMP) image
	$(BIN)/modeldeploy-dev sandbox build
	MODELDEPLOY_IMAGE=$(IMAGE) MODELDEPLOY_OCI_RUNTIME=$(OCI_RUNTIME) \
	MODELDEPLOY_SANDBOX_DIR=$${MODELDEPLOY_SANDBOX_DIR:-/tmp/modeldeploy-image-sandbox} \
	MODELDEPLOY_SANDBOX_NET=$${MODELDEPLOY_SANDBOX_NET:-77} \
	$(BIN)/pytest tests/image -q

generate: $(STAMP)
	$(BIN)/python -m modeldeploy.crdgen

sandbox-up: $(STAMP)
	$(BIN)/modeldeploy-dev sandbox up

sandbox-down: $(STAMP)
	$(BIN)/modeldeploy-dev sandbox down

sandbox-status: $(STAMP)
	$(BIN)/modeldeploy-dev sandbox status

demo: $(STAMP)
	$(BIN)/modeldeploy-dev demo up

demo-down: $(STAMP)
	$(BIN)/modeldeploy-dev demo down

clean: sandbox-down
	rm -rf $(VENV) .venv-mlserver .venv-mlserver.lock .venv-moto .venv-moto.lock .mypy_cache .ruff_cache .pytest_cache
