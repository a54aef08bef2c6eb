# Run `make` or `make help` to list the targets.
.DEFAULT_GOAL := help
.PHONY: help install demo test lint opensearch-up opensearch-down

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

install: ## Install the catalogue (editable) with test dependencies
	python3 -m pip install -e '.[test]'

demo: ## Run the demo catalogue on http://127.0.0.1:8080
	python3 -m pip install -e . && catalogue demo

test: ## Install test dependencies, start the OpenSearch cluster, lint and run the whole suite
	bash scripts/test.sh

lint: ## ruff and mypy only
	python3 -m ruff check catalogue tests && python3 -m mypy

opensearch-up: ## Start a local 3-node OpenSearch cluster (ports 9251-9253)
	python3 deploy/opensearch/opensearch-cluster start

opensearch-down: ## Stop the local OpenSearch cluster
	python3 deploy/opensearch/opensearch-cluster stop
