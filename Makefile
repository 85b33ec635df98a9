SHELL := /bin/bash
PY := .venv/bin/python
ORDERS := .venv/bin/orders
SUB ?= customer1
ROLE ?= customer
.DEFAULT_GOAL := up

.PHONY: help up down status stacks test lint token demo bench chaos install clean-data join leave firewall bench-scale

help: ## list the targets and what each does
	@grep -E '^[a-z-]+:.*## ' Makefile | sed -E 's/:.*## /\t/' | expand -t 14

up: ## install what is missing, start the whole stack, deploy, seed
	@cluster/up.sh

down: ## stop everything `make up` started (data kept in .run/)
	@cluster/down.sh

status: ## show each part of the stack
	@cluster/services.sh status

stacks: ## a stack that seems stuck: health, busy Postgres statements, where each actor waits
	@bash -c 'source cluster/common.sh && exec $(ORDERS) stacks'

join: ## this machine joins the head at HEAD=<address or host name> as a Ray worker node (README, Adding a machine)
	@cluster/join.sh $(HEAD)

leave: ## stop the worker node `make join` started here (by pid)
	@cluster/leave.sh

firewall: ## print an nftables rule set for a machine of a multi-host cluster, MEMBERS="<addresses>": only the stack's ports, from the members (review it, then `nft -c -f` and `nft -f` it as root: README, Adding a machine)
	@cluster/firewall.sh $(MEMBERS)

install: ## install what is missing (apt packages, Kafka, the venv) without starting anything
	@cluster/install.sh

token: ## print a demo JWT (SUB=customer1 ROLE=customer); seed style: no exp; needs only .venv
	@cluster/install.sh --venv-only >/dev/null && $(ORDERS) token --sub '$(SUB)' --role '$(ROLE)'

lint: ## ruff and mypy --strict (both also run in make test)
	@$(PY) -m ruff check .
	@$(PY) -m mypy

test: ## set up everything on a fresh machine and run lint, types and the whole test suite
	@cluster/test.sh

demo: ## the seed quickstart, then follow the order to its final status
	@cluster/demo.sh

clean-data: down ## stop the stack and delete its data (Postgres, Redis, Kafka, Ray): the next make up starts empty
	pgdata=$$(cluster/services.sh pgdata) && run="$${RUN_DIR:-.run}" && rm -rf "$$run/pg" "$$run/redis" "$$run/kafka" "$$run/ray" "$$pgdata"

soak: ## bench, preload SOAK_ORDERS (10M) orders of history in SQL, bench again, one retention pass: bench/results/soak.json with soak_ratio (~1 h on 2 cores, ~30 GB; the history stays: use a stack you can throw away); SOAK_ARGS="--help"
	@cluster/heavy.sh $(PY) -m bench.soak --orders $(or $(SOAK_ORDERS),10000000) $(SOAK_ARGS)

redeploy: ## roll out code changes to the running stack (actors replaced, Serve app updated)
	@source cluster/common.sh && $(PY) -m cli.main deploy --restart

chaos: ## steady load while actors, Kafka, Postgres and Redis are killed; checks every invariant
	@cluster/heavy.sh $(ORDERS) chaos $(CHAOS_ARGS)

bench: ## load test the running stack: DURATION=60 RATE=320 (open loop) or CONCURRENCY=n; then the step phase to saturation (its rate held 20 s to confirm it) and latency at 25/50/90 % of it (SATURATION=0 skips them); BENCH_ARGS="--help"
	@cluster/heavy.sh $(PY) -m bench --duration $(or $(DURATION),60) --rate $(or $(RATE),320) --concurrency $(or $(CONCURRENCY),0) $(if $(filter 0,$(SATURATION)),--no-saturation) $(BENCH_ARGS)

bench-scale: ## scale-out on hosts made of network namespaces (root): 1 worker host capped at CAP=0.4 cores, the same with 2×CAP, then 2 hosts at CAP, then one dies under load; bench/results/scaleout.json, docs/scaling.png (docs/scaling.md)
	@cluster/heavy.sh $(PY) -m bench.scale --cap $(or $(CAP),0.4) $(SCALE_ARGS)
