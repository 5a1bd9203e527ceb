# epitrace — build, test and run. `make help` lists the targets.

CARGO ?= cargo
CARGO_FLAGS ?=
# rustup installs cargo in ~/.cargo/bin, which a fresh shell may not have.
export PATH := $(HOME)/.cargo/bin:$(PATH)

.PHONY: help bootstrap prereqs-build prereqs-test build test fmt fmt-check lint unit demo up bench bench-smoke bench-e2e bench-scale bench-failover chaos eval calibrate

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

bootstrap: ## install what building and testing need (apt, rustup; idempotent)
	scripts/bootstrap.sh

# Run first by every target that builds: install what is missing, or stop
# with one line naming it and the command that installs it.
prereqs-build:
	@scripts/bootstrap.sh --quiet build
prereqs-test:
	@scripts/bootstrap.sh --quiet test

build: prereqs-build ## build every crate and the epitrace binary
	$(CARGO) build --workspace --all-targets $(CARGO_FLAGS)

fmt: ## format the code
	$(CARGO) fmt --all

fmt-check: prereqs-test ## fail on unformatted code
	$(CARGO) fmt --all -- --check

lint: prereqs-test ## clippy and rustdoc with warnings as errors, every target and feature
	$(CARGO) clippy --workspace --all-targets --all-features $(CARGO_FLAGS) -- -D warnings
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --no-deps --workspace --all-features $(CARGO_FLAGS)

unit: prereqs-test ## run every test (unit, property, integration, end to end on a local Kafka broker and Schema Registry), then every benchmark once at smoke size
	$(CARGO) test --workspace --all-features --no-run $(CARGO_FLAGS)
	$(CARGO) test -p epitrace-bench --benches --no-run $(CARGO_FLAGS)
	scripts/with-kafka.sh scripts/with-registry.sh sh -c '$(CARGO) test --workspace --all-features $(CARGO_FLAGS) && $(BENCH_SMOKE)'

# Every benchmark once, tiny and in the test profile (no second native
# build): a broken benchmark fails `make test`; its figures mean nothing.
BENCH_SMOKE = EPITRACE_BENCH_SMOKE=1 EPITRACE_E2E_JSON=$${TMPDIR:-/tmp}/bench-e2e-smoke.json $(CARGO) test -p epitrace-bench --benches $(CARGO_FLAGS) -- --nocapture

bench-smoke: prereqs-test ## every benchmark once at smoke size, as make test runs them (local broker)
	$(CARGO) test --workspace --all-features --no-run $(CARGO_FLAGS)
	scripts/with-kafka.sh sh -c '$(BENCH_SMOKE)'

test: prereqs-test fmt-check lint unit ## the whole gate: format, lint, all tests

demo: prereqs-build ## the whole pipeline in one process on an in-process mock Kafka cluster
	$(CARGO) run -p epitrace $(CARGO_FLAGS) -- demo

up: ## the pipeline on the real local broker: a simulated city traced, clusters and a timeline shown; runs until Ctrl-C
	scripts/up.sh

bench: prereqs-build ## throughput of segmenter + presence-join on RocksDB (release build)
	$(CARGO) bench -p epitrace-bench --bench pipeline --bench sim_scale $(CARGO_FLAGS)

chaos: prereqs-test ## the full chaos test: 3 instances (+1 joining and leaving), ~500k feed records, 20 SIGKILLs, 2 broker restarts (release build; CHAOS_GUARANTEE=at_least_once for the other mode)
	CHAOS_RESIDENTS=$${CHAOS_RESIDENTS:-300} CHAOS_KILLS=$${CHAOS_KILLS:-20} CHAOS_BROKER_RESTARTS=$${CHAOS_BROKER_RESTARTS:-2} \
		$(CARGO) test --release -p epitrace --test chaos $(CARGO_FLAGS) -- --nocapture

bench-e2e: prereqs-test ## the whole pipeline end to end on a local broker against a plain consumer of the same topics: ~5.9M telecom records (0.1 % malformed), both delivery modes, each processor alone, then latency under half load (release build; JSON in benches/bench-e2e.json)
	$(CARGO) bench -p epitrace-bench --bench e2e --no-run $(CARGO_FLAGS)
	scripts/with-kafka.sh sh -c 'EPITRACE_BENCH_BROKERS=$$EPITRACE_TEST_BROKERS $(CARGO) bench -p epitrace-bench --bench e2e $(CARGO_FLAGS)'

bench-scale: prereqs-test ## state and disk against city size: the exactly-once pipeline alone on 1,200, 2,400 and 3,600 residents × 7 days and 3,600 × 3 days (release build; JSON in benches/bench-scale-*.json)
	$(CARGO) bench -p epitrace-bench --bench e2e --no-run $(CARGO_FLAGS)
	scripts/with-kafka.sh sh -c 'for size in 1200:7 2400:7 3600:7 3600:3; do \
		EPITRACE_E2E_ONLY=pipeline EPITRACE_E2E_REPS=1 EPITRACE_E2E_RESIDENTS=$${size%:*} EPITRACE_E2E_DAYS=$${size#*:} \
		EPITRACE_E2E_JSON=$(CURDIR)/benches/bench-scale-$${size%:*}x$${size#*:}.json EPITRACE_BENCH_BROKERS=$$EPITRACE_TEST_BROKERS \
		$(CARGO) bench -p epitrace-bench --bench e2e $(CARGO_FLAGS) || exit 1; done'

bench-failover: prereqs-test ## failover of a partition of ~1M stored records: changelog restore vs input replay, exactly-once vs at-least-once throughput (release build, local broker)
	$(CARGO) build --release -p epitrace --bin epitrace $(CARGO_FLAGS)
	$(CARGO) bench -p epitrace-bench --bench failover --no-run $(CARGO_FLAGS)
	EPITRACE_BIN="$$($(CARGO) metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/release/epitrace" \
		scripts/with-kafka.sh sh -c 'EPITRACE_BENCH_BROKERS=$$EPITRACE_TEST_BROKERS $(CARGO) bench -p epitrace-bench --bench failover $(CARGO_FLAGS)'

eval: prereqs-test ## the default simulated city through the pipeline on a local broker, then the accuracy report (release build; ~17 min)
	$(CARGO) build --release --workspace --bins $(CARGO_FLAGS)
	EPITRACE_BIN="$$($(CARGO) metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/release/epitrace" \
		scripts/with-kafka.sh scripts/eval.sh

calibrate: prereqs-test ## fit the exposure likelihood on simulated cities other than make eval's (seeds 11, 12; ~16 min): deploy/calibration/likelihood.toml
	$(CARGO) build --release --workspace --bins $(CARGO_FLAGS)
	EPITRACE_BIN="$$($(CARGO) metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/release/epitrace" \
		scripts/calibrate.sh

# A real single-node Kafka broker (KRaft) on 127.0.0.1 for development and
# tests, resolved from Maven Central (JDK 17 + Maven). See deploy/README.md.
.PHONY: kafka-up kafka-down kafka-status kafka-reset registry-up registry-down registry-status

kafka-up: ## start the local Kafka broker on 127.0.0.1:9092 (idempotent)
	scripts/kafka-local.sh start

kafka-down: ## stop the local Kafka broker
	scripts/kafka-local.sh stop

kafka-status: ## is the local Kafka broker up? (exit 3 when stopped)
	scripts/kafka-local.sh status

kafka-reset: ## stop the local broker and delete its data (fresh cluster)
	scripts/kafka-local.sh reset

# A real Confluent-compatible Schema Registry (Apicurio Registry, built from
# Maven Central by deploy/schema-registry) on 127.0.0.1. See deploy/README.md.
registry-up: ## start the local Schema Registry on 127.0.0.1:8081 (idempotent; schemas kept across restarts)
	scripts/registry-local.sh start

registry-down: ## stop the local Schema Registry
	scripts/registry-local.sh stop

registry-status: ## whether the local Schema Registry runs and answers
	scripts/registry-local.sh status
