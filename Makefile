# Paygent — every target installs what it needs first (offline-capable: PyPI + npm only).
SHELL := /bin/bash
PY := python3
VENV := .venv
BIN := $(VENV)/bin
TOOLS := tools/node_modules
SOLC_VERSION := 0.8.37
export PATH := $(CURDIR)/$(BIN):$(PATH)
# py-solc-x (used by ape-solidity) finds solc-v<version> here: tools/solcx/solc-v0.8.37 is a link to
# tools/solc-wrapper.js (solcjs). The venv's activate script exports the same, for `ape` by hand.
export SOLCX_BINARY_PATH := $(CURDIR)/tools/solcx

# `ape compile` recompiles changed files but not the contracts that import them: when a shared
# library or interface changed since the last build, rebuild everything.
APE_COMPILE = if [ -f .build/__local__.json ] && [ -n "$$(find contracts/lib contracts/interfaces -name '*.sol' -newer .build/__local__.json)" ]; \
	then $(BIN)/ape compile --force; else $(BIN)/ape compile; fi

.PHONY: install demo test test-audit bench mutation compile chain chain-stop clean

install: $(BIN)/.installed $(TOOLS)/.installed $(BIN)/anvil

$(BIN)/.installed: requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -r requirements.lock
	$(BIN)/pip install -q --disable-pip-version-check --no-deps -e .
	grep -q SOLCX_BINARY_PATH $(BIN)/activate || echo 'export SOLCX_BINARY_PATH="$(CURDIR)/tools/solcx"' >> $(BIN)/activate
	touch $@

$(TOOLS)/.installed: tools/package.json tools/package-lock.json
	cd tools && npm ci --no-audit --no-fund --loglevel=error
	touch $@

$(BIN)/anvil: tools/anvil $(BIN)/.installed
	ln -sf ../../tools/anvil $@

compile: install
	$(APE_COMPILE)

# The tests: unit + quick property profile + x402/keeper/agent, each test session on a private anvil.
test: install
	$(APE_COMPILE)
	APE_FOUNDRY_HOST=auto HYPOTHESIS_PROFILE=$${HYPOTHESIS_PROFILE:-quick} $(BIN)/ape test tests -q

# Auditors: the property suite with many more examples (slow).
test-audit: install
	$(APE_COMPILE)
	APE_FOUNDRY_HOST=auto HYPOTHESIS_PROFILE=audit $(BIN)/ape test tests/contracts/test_properties.py -q

mutation: install
	$(APE_COMPILE)
	$(BIN)/python scripts/mutation.py

bench: install
	$(APE_COMPILE)
	$(BIN)/python -m bench

demo: install
	$(APE_COMPILE)
	$(BIN)/python -m paygent.demo

chain: install
	$(BIN)/python -m paygent.localchain start

chain-stop:
	$(BIN)/python -m paygent.localchain stop

clean:
	rm -rf .build build .paygent
