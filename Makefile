# Paygent — every target installs what it needs first (offline-capable: PyPI + npm only).
SHELL := /bin/bash
PY := python3
VENV := .venv
BIN := $(VENV)/bin
TOOLS := tools/node_modules
SOLC_DIR := $(HOME)/.solcx
SOLC_VERSION := 0.8.37
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: install demo test test-audit bench mutation compile chain chain-stop clean

install: $(BIN)/.installed $(TOOLS)/.installed $(SOLC_DIR)/solc-v$(SOLC_VERSION) $(BIN)/anvil

$(BIN)/.installed: requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -r requirements.lock
	$(BIN)/pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $@

$(TOOLS)/.installed: tools/package.json tools/package-lock.json
	cd tools && npm ci --no-audit --no-fund --loglevel=error
	touch $@

# py-solc-x (used by ape-solidity) looks for solc-v<version> here; ours is solcjs behind a wrapper.
$(SOLC_DIR)/solc-v$(SOLC_VERSION): tools/solc-wrapper.js $(TOOLS)/.installed
	mkdir -p $(SOLC_DIR)
	ln -sf $(CURDIR)/tools/solc-wrapper.js $@

$(BIN)/anvil: tools/anvil $(BIN)/.installed
	ln -sf ../../tools/anvil $@

compile: install
	$(BIN)/ape compile

# The tests: unit + quick property profile + x402/keeper/agent, each test session on a private anvil.
test: install
	$(BIN)/ape compile
	APE_FOUNDRY_HOST=auto HYPOTHESIS_PROFILE=$${HYPOTHESIS_PROFILE:-quick} $(BIN)/ape test tests -q

# Auditors: the property suite with many more examples (slow).
test-audit: install
	$(BIN)/ape compile
	APE_FOUNDRY_HOST=auto HYPOTHESIS_PROFILE=audit $(BIN)/ape test tests/contracts/test_properties.py -q

mutation: install
	$(BIN)/ape compile
	$(BIN)/python scripts/mutation.py

bench: install
	$(BIN)/ape compile
	$(BIN)/python -m bench

demo: install
	$(BIN)/ape compile
	$(BIN)/python -m paygent.demo

chain: install
	$(BIN)/python -m paygent.localchain start

chain-stop:
	$(BIN)/python -m paygent.localchain stop

clean:
	rm -rf .build build .paygent
