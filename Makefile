# The two commands a newcomer types are `make demo` and `make test`;
# both run `make setup` first, which is a no-op when nothing changed.
PY := .venv/bin/python
export PATH := $(CURDIR)/.venv/bin:$(CURDIR)/hack/controlplane/bin:$(PATH)

.PHONY: setup test unit integration e2e demo bench lint fmt agents clean

setup:
	@bash hack/setup.sh

test: setup lint
	$(PY) -m pytest -q tests

unit: setup
	$(PY) -m pytest -q tests/unit

integration: setup
	$(PY) -m pytest -q tests/integration

e2e: setup
	$(PY) -m pytest -q tests/e2e

demo: setup
	$(PY) -m igor.demo

bench: setup
	$(PY) -m bench

lint: setup
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	.venv/bin/hadolint $(wildcard node-image/Dockerfile operator/Dockerfile)

fmt:
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

agents:
	@$(MAKE) -s -C agents

clean:
	rm -rf .venv agents/build hack/controlplane/bin .pytest_cache .ruff_cache
