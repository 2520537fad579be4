# agentstage - the two commands a newcomer runs:
#   make plan    set up .venv on first use, then show what the pilot-dev stack would deploy (offline)
#   make test    set up .venv and the test servers' packages on first use, then run the whole test suite
# Other stacks: make plan STACK=pilot-prod

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STACK ?= pilot-dev
INSTALLED := $(VENV)/.installed

.PHONY: plan check test bench bench-check system-deps checkov azurite report-screenshot clean

# Byte-compiles on install (the SDKs are large; without .pyc files every process recompiles them).
$(INSTALLED): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	PYTHONDONTWRITEBYTECODE= $(BIN)/python -m pip install --quiet --editable '.[infra,runtime,policy,dev]'
	touch $(INSTALLED)

plan: $(INSTALLED)
	$(BIN)/agentstage plan --stack $(STACK)

check: $(INSTALLED) checkov
	$(BIN)/agentstage check --all

system-deps:
	scripts/install-system-deps.sh

# checkov lives in a venv of its own: it pins packaging<24, pulumi needs >=26.
checkov:
	scripts/install-checkov.sh

# Azurite (the Azure Storage emulator, an npm package) lives in .tools/: the Storage Queue bus tests run on it.
azurite:
	scripts/install-azurite.sh

test: $(INSTALLED) system-deps checkov azurite
	$(BIN)/python -m pytest

bench: $(INSTALLED)
	$(BIN)/python benchmarks/plan_vs_flat.py

bench-check: $(INSTALLED) checkov
	$(BIN)/python benchmarks/check_vs_plan.py

# The README's picture of a real report (docs/report.png), regenerated from the enterprise stage.
report-screenshot: $(INSTALLED) system-deps checkov
	scripts/report-screenshot.sh

clean:
	rm -rf $(VENV) .venv-checkov .tools build .pytest_cache
