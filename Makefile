# tailnet-operator. `make help` lists the targets. Everything runs on the project's own Node.js
# LTS (node_modules/.bin/node, from the npm package `node`), not the machine's.
SHELL := bash
.SHELLFLAGS := -euo pipefail -c
export PATH := $(CURDIR)/node_modules/.bin:$(PATH)
NODE := $(CURDIR)/node_modules/.bin/node
LAUNCH := $(NODE) src/sandbox/launch.ts --

.DEFAULT_GOAL := help

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

deps: ## Install Debian packages and npm packages (with the project's Node.js LTS)
	@bash scripts/install-deps.sh

bins: deps ## Build the pinned sandbox binaries into the cache (skips what is built)
	@bash scripts/build-bins.sh

typecheck: deps ## Type-check everything
	tsc --noEmit -p tsconfig.json

lint: deps ## Lint everything
	eslint --max-warnings 0 .

test-unit: deps ## Unit tests (no root, no network)
	$(NODE) --test --test-reporter=spec 'src/**/*.test.ts' 'test/images/*.test.ts' 'test/corpus/*.test.ts'

images: deps bins ## Build the OCI images (operator, proxy for amd64+arm64; sandbox: pause, coredns, nginx) into the cache; ARGS=--check|--verify-reproducible
	@BUILD_ONLY=tailscale_arm64 bash scripts/build-bins.sh
	$(NODE) scripts/images/build.ts $(ARGS)

sandbox-images: deps bins ## Build only the amd64 images the sandbox's node runs (what test, demo and bench need)
	$(NODE) scripts/images/build.ts --arch amd64

test-chart: deps bins ## Chart tests: helm lint, renders, the static manifest is the chart's (no root)
	$(NODE) --test --test-reporter=spec 'test/chart/*.test.ts'

manifest: deps bins ## Regenerate deploy/operator.yaml from the chart
	bash scripts/render-manifest.sh

test-sandbox: deps bins sandbox-images ## Tests against the real sandbox cluster (root; builds binaries and images if missing)
	$(LAUNCH) $(NODE) --test --test-reporter=spec --test-concurrency=1 \
	  --test-global-setup=test/global-setup.ts 'test/sandbox/**/*.test.ts'

check: typecheck lint test-unit ## Typecheck, lint and unit tests

test: deps bins ## Everything CI runs: typecheck, lint, unit, chart and sandbox tests
	$(MAKE) --no-print-directory typecheck lint test-unit test-chart test-sandbox

demo: deps bins sandbox-images ## Start the sandbox and show it working, then tear it down (ARGS=--keep keeps it)
	$(LAUNCH) $(NODE) src/demo/main.ts $(ARGS)

bench: deps bins images ## Print figures: sandbox start-up and memory, Service exposure, firewall backends, egress throughput, proxy footprint and data path, API server proxy latency, Ingress (L7 on nginx vs L3 vs tailscale serve, CPU per MiB per process; create -> first HTTPS 200 with a TLS Secret and with ACME), operators side by side at scale (SCALE_SERVICES=1000)
	@BUILD_ONLY="containerboot k8s_operator" bash scripts/build-bins.sh
	$(NODE) scripts/images/build.ts
	$(LAUNCH) $(NODE) bench/sandbox-startup.ts
	$(LAUNCH) $(NODE) bench/service-exposure.ts
	$(LAUNCH) $(NODE) bench/firewall.ts
	$(LAUNCH) $(NODE) bench/egress.ts
	$(LAUNCH) $(NODE) bench/proxy-footprint.ts
	$(LAUNCH) $(NODE) bench/proxy-datapath.ts
	$(LAUNCH) $(NODE) bench/apiserver-proxy.ts
	$(LAUNCH) $(NODE) bench/ingress.ts
	$(LAUNCH) $(NODE) bench/operator-scale.ts

chaos: deps bins sandbox-images ## Chaos run: 100 Services churned under 200 faults (operator, proxies, API server, Headscale killed), then no orphans; CHAOS_SEED, CHAOS_FAULTS, CHAOS_SERVICES (docs/chaos.md)
	$(LAUNCH) $(NODE) bench/chaos.ts
.PHONY: chaos

clean-sandbox: deps ## Remove sandboxes left by crashed runs
	$(LAUNCH) true

.PHONY: help deps bins images sandbox-images typecheck lint test-unit test-chart test-sandbox check test demo bench manifest clean-sandbox
