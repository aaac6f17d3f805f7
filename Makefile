# The two commands of the README: `make lab` (the main job on the local lab) and `make test` (all tests).
SHELL := /bin/bash
export PATH := $(CURDIR)/.venv/bin:$(PATH)
export CONTAINERS_CONF := $(CURDIR)/molecule/shared/containers.conf
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
# Wheelhouses, the lab image's inputs and the engine venv live here (molecule mounts from it).
export CC_CACHE ?= $(HOME)/.cache/classroom-cluster
PYTEST_ARGS ?=

.PHONY: lab lab-rollback test setup box-image bundle lint docs pytest unit clean-lab

setup:
	bash scripts/setup-host.sh
	bash scripts/make-venv.sh
	bash scripts/build-image.sh
	bash scripts/build-wheelhouse.sh >/dev/null
	bash scripts/build-probe-wheelhouse.sh >/dev/null
	bash scripts/fetch-promtool.sh

lint: setup
	yamllint -s .
	ruff check .
	mypy
	ansible-lint --offline
	bash scripts/syntax-check.sh

# Regenerates each role's defaults/main.yml and README variables table from meta/argument_specs.yml.
docs:
	bash scripts/make-venv.sh
	python scripts/role_vars.py --write

# The prepared box (the lab's vLLM already installed) for scenarios whose subject is not installation;
# built once, reused while its inputs are unchanged. `make lab` does not need it.
box-image: setup
	bash scripts/build-box-image.sh

# The lab's offline bundle, for the site scenario (its box has no network); rebuilt when an input changes.
bundle: setup
	bash scripts/build-bundle.sh >/dev/null

# pytest exits 5 when it collected nothing: that is a failure here, never a pass.
pytest: setup box-image bundle
	python -m pytest $(PYTEST_ARGS)

unit: setup
	python -m pytest -m "not molecule and not engine" $(PYTEST_ARGS)

test: lint pytest

lab: setup
	bash scripts/lab.sh

# Back to Ollama on the lab box from its newest archive, gated; `make lab` rolls forward again.
lab-rollback:
	bash scripts/lab.sh --rollback

clean-lab:
	bash scripts/lab.sh --destroy
