# QuackNet local stack. `make run` starts everything, `make test` runs every test.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
STATE ?= $(or $(QUACKNET_HOME),.quacknet)
COMPOSE_VERSION ?= v2.40.3
COMPOSE_PLUGIN := $(STATE)/docker/cli-plugins/docker-compose

.PHONY: help run test test-unit lint stop status install kafka-tool bench soak browser compose-plugin compose-config lock clean compose-env

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

run: install  ## install what is missing, start the local stack, print what runs where
	$(PY) -m devtools run

test: install $(COMPOSE_PLUGIN) browser lint  ## run every test (starts the services it needs, stops what it started)
	$(PY) -m pytest $(PYTEST_ARGS)

test-unit: install lint  ## the unit tier only: no services, no browser (seconds)
	$(PY) -m pytest -m unit $(PYTEST_ARGS)

lint: install  ## ruff over the whole tree
	$(VENV)/bin/ruff check .

stop:  ## stop the local stack
	$(PY) -m devtools stop

status:  ## pid, ports and health of each service
	$(PY) -m devtools status

install: $(VENV)/.installed  ## the venv with pinned runtime + dev dependencies, and the Kafka jars from Maven Central
	$(PY) -m devtools install

$(VENV)/.installed: requirements.txt requirements-dev.txt constraints.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -r requirements-dev.txt -c constraints.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $@

kafka-tool: install  ## run a Kafka CLI tool as the operators' principal: make kafka-tool ARGS="kafka-consumer-groups --bootstrap-server 127.0.0.1:9092 --list"
	$(PY) -m devtools kafka-tool $(ARGS)

bench: install  ## benchmark scripts (print figures as ratios against a baseline of the same run)
	$(PY) -m bench.gateway_insert
	$(PY) -m devtools run
	$(PY) -m bench.api_ingest
	$(PY) -m bench.loader_throughput --freshness 1000
	$(PY) -m bench.replay_throughput

browser:  ## Debian's chromium for the Airflow UI test (apt-get, once)
	scripts/install-browser.sh

DURATION ?= 600
RATE ?= 3000
NODES ?= $(QUACKNET_KAFKA_NODES)
soak: install  ## load + faults + exact audit: make soak DURATION=600 RATE=3000 [NODES=3: adds broker_loss] (exit 1 on any loss)
	$(if $(NODES),QUACKNET_KAFKA_NODES=$(NODES)) $(PY) -m devtools soak --duration $(DURATION) --rate $(RATE) $(SOAK_ARGS)

compose-plugin: $(COMPOSE_PLUGIN)  ## the docker compose v2 CLI plugin, built from the Go module proxy

$(COMPOSE_PLUGIN):
	scripts/install-compose-plugin.sh $(COMPOSE_VERSION) $@

compose-config: $(COMPOSE_PLUGIN)  ## validate docker-compose.yaml with the real compose CLI
	DOCKER_CONFIG=$(STATE)/docker docker compose -f docker-compose.yaml --env-file .env.example config -q

compose-env: install  ## write .env with generated secrets for docker compose (once)
	$(PY) -m devtools compose-env

lock: $(VENV)/.installed  ## re-pin constraints.txt from the venv
	( head -2 constraints.txt; $(PY) -m pip freeze --exclude-editable ) > constraints.txt.new && mv constraints.txt.new constraints.txt

clean: stop  ## stop the stack and delete its state (data, logs, jars)
	rm -rf $(STATE)
