# fleet.multiarch: the two commands a user runs are `make demo` and `make test`.
# Each does its own set-up (virtual environment, system packages, test environment) and is quick the
# second time. Run as root on a Debian/Ubuntu x86_64 machine.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

VENV ?= $(CURDIR)/.venv
BIN := $(VENV)/bin
# Where `ansible-test sanity` runs: it needs the collection under ansible_collections/<ns>/<name>.
SANITY_ROOT ?= $(CURDIR)/.cache/sanity
SANITY_DIR := $(SANITY_ROOT)/ansible_collections/fleet/multiarch
SANITY_PYTHON ?=
PYTEST_ARGS ?=
export PATH := $(BIN):$(PATH)

.PHONY: help demo test venv testenv-up testenv-down testenv-purge testenv-status \
	lint ruff ansible-lint changelog-lint shellcheck sanity unit integration molecule build constraints clean \
	fleet-build fleet-up fleet-down fleet-status fleet-provisioned bench

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

TESTENV_INVENTORY := /var/lib/fleet-multiarch-testenv/inventory.yml
FLEET_INVENTORY := /var/lib/fleet-multiarch-testenv/fleet/inventory.yml

# the installed collection's playbook, as a user runs it; the test environment supplies only the inventories
demo: venv testenv-up fleet-up ## the main job on this machine: build host, release of the example app, each platform run, rollout to the emulated ARM fleet (docs/demo.md)
	$(BIN)/ansible-playbook -i $(TESTENV_INVENTORY) -i $(FLEET_INVENTORY) fleet.multiarch.demo

test: venv testenv-up lint sanity unit integration molecule build ## everything CI runs
	@echo "make test: all stages passed"

venv: ## .venv with pinned requirements and the collection linked in
	@scripts/venv.sh

testenv-up: ## start the real test environment (engine, registries, emulation, base images)
	@scripts/testenv.sh up

testenv-down: ## stop it (caches and images are kept)
	@scripts/testenv.sh down

testenv-purge: ## stop it and remove its state
	@scripts/testenv.sh purge

testenv-status:
	@scripts/testenv.sh status

fleet-build: ## build (or reuse from the cache) the emulated ARM fleet's base images
	@scripts/fleet.sh build

fleet-provisioned: venv testenv-up fleet-build ## the "provisioned" guest images (device role applied), rebuilt when their recipe changes
	@scripts/fleet-provision.sh

fleet-up: fleet-provisioned ## boot the emulated ARM fleet from the provisioned images (FLEET_ARM64, FLEET_ARMHF guests)
	@scripts/fleet.sh up --image provisioned

fleet-down: ## stop the emulated ARM fleet
	@scripts/fleet.sh down

fleet-status:
	@scripts/fleet.sh status

bench: venv testenv-up fleet-provisioned ## every benchmark against its reference tool; results in bench/results/
	@bench/run.sh

lint: ruff ansible-lint changelog-lint shellcheck ## ruff, ansible-lint --profile production, changelog fragments, shellcheck

ruff: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

ansible-lint: venv
	$(BIN)/ansible-lint --profile production

changelog-lint: venv
	$(BIN)/antsibull-changelog lint

# Debian's shellcheck (scripts/testenv.sh installs it); -x follows the scripts' `source` of scripts/lib.
shellcheck:
	@command -v shellcheck >/dev/null || { echo 'shellcheck not found: scripts/testenv.sh up installs it (apt-get install shellcheck)'; exit 1; }
	shellcheck -x scripts/*.sh scripts/lib/*.sh bench/*.sh

sanity: venv ## ansible-test sanity (no ignore entries) on a copy of the tracked files
	@rm -rf $(SANITY_DIR) && mkdir -p $(SANITY_DIR)
	@git ls-files -co --exclude-standard -z | tar --null -T - -cf - | tar -xf - -C $(SANITY_DIR)
	@cd $(SANITY_DIR) && git init -q && git add -A
	@scripts/ansible-test-bootstrap.sh $(BIN)/python $(SANITY_ROOT)/pythons >/dev/null
	cd $(SANITY_DIR) && PATH=$(SANITY_ROOT)/pythons:$(BIN):/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
		$(BIN)/ansible-test sanity --venv $(if $(SANITY_PYTHON),--python $(SANITY_PYTHON)) --color no --truncate 0

unit: venv ## pure-logic tests
	$(BIN)/pytest tests/unit $(PYTEST_ARGS)

integration: venv testenv-up ## tests against the real engine, registries and emulation
	$(BIN)/pytest tests/integration $(PYTEST_ARGS)

molecule: venv testenv-up ## every molecule scenario under extensions/molecule (they use the test environment)
	@scenarios=$$(find extensions/molecule -mindepth 2 -maxdepth 2 -name molecule.yml 2>/dev/null | wc -l); \
	if [ "$$scenarios" -eq 0 ]; then echo "molecule: no scenarios yet"; \
	else cd extensions && $(BIN)/molecule test --all; fi

build: venv ## build the collection tarball and install it into a scratch path to prove it installs
	@rm -rf .cache/build && mkdir -p .cache/build
	$(BIN)/ansible-galaxy collection build --force --output-path .cache/build .
	$(BIN)/ansible-galaxy collection install --force -p .cache/build/installed .cache/build/fleet-multiarch-*.tar.gz
	@# From the installed tarball alone (not the venv's link), ansible-doc must document every module.
	@mods=$$(find plugins/modules -name '*.py' ! -name '__init__.py' | wc -l); \
	listed=$$(cd / && ANSIBLE_COLLECTIONS_PATH=$(CURDIR)/.cache/build/installed ANSIBLE_COLLECTIONS_SCAN_SYS_PATH=0 \
		$(BIN)/ansible-doc -t module -l fleet.multiarch | grep -c '^fleet\.multiarch\.' || true); \
	[ "$$mods" -eq "$$listed" ] || { echo "the installed tarball documents $$listed modules, plugins/modules has $$mods"; exit 1; }; \
	echo "build: the tarball installs and documents $$listed modules"

constraints: ## re-pin constraints.txt from a fresh resolution of the requirements files
	rm -rf .cache/pin && python3 -m venv .cache/pin
	.cache/pin/bin/pip install -q -r requirements-test.txt
	{ echo "# Every package of the test virtual environment, pinned (pip freeze). Update with: make constraints"; \
	  .cache/pin/bin/pip freeze; } > constraints.txt

clean: ## remove the venv and build output (the test environment stays; see testenv-purge)
	rm -rf $(VENV) .cache tests/output
