# Build, test and run Parley. `make test` is what CI runs (through .ci/run).
# Everything that needs PostgreSQL or Redis depends on `services`, which
# starts them locally without Docker (see .ci/services).

GO ?= go
GOFMT ?= $(shell $(GO) env GOROOT)/bin/gofmt
BENCH ?= all
BENCH_FLAGS ?=

# The services .ci/services brings up. Override on the command line or in the
# environment to point at others.
PARLEY_TEST_POSTGRES_URL ?= postgres://parley:parley@127.0.0.1:5432/parley?sslmode=disable
PARLEY_TEST_REDIS_URL ?= redis://127.0.0.1:6379/0
PARLEY_DATABASE_URL ?= $(PARLEY_TEST_POSTGRES_URL)
PARLEY_REDIS_URL ?= $(PARLEY_TEST_REDIS_URL)

TEST_ENV = PARLEY_TEST_POSTGRES_URL='$(PARLEY_TEST_POSTGRES_URL)' PARLEY_TEST_REDIS_URL='$(PARLEY_TEST_REDIS_URL)'
RUN_ENV = PARLEY_DATABASE_URL='$(PARLEY_DATABASE_URL)' PARLEY_REDIS_URL='$(PARLEY_REDIS_URL)'

.PHONY: services test lint fmt-check vet bench run build corpus chaos

services:
	.ci/services

# go test alone shows a passing package's output to nobody; testlog (fed
# its -json events) prints each package's result, failed tests' output and
# the SKIP line of every integration test whose server is not configured.
test: services fmt-check vet
	$(TEST_ENV) bash -o pipefail -c '$(GO) test -json -race -count=1 -timeout 15m ./... | $(GO) run ./cmd/testlog'

lint: fmt-check vet
	@if command -v staticcheck >/dev/null 2>&1; then \
		echo staticcheck ./...; staticcheck ./...; \
	else \
		echo "staticcheck not installed; skipping it"; \
	fi

fmt-check:
	@unformatted=$$($(GOFMT) -l .) || exit 1; \
	if [ -n "$$unformatted" ]; then \
		echo "gofmt -l lists files that need formatting:"; \
		echo "$$unformatted"; \
		exit 1; \
	fi

vet:
	$(GO) vet ./...

# make bench BENCH=stream [BENCH_FLAGS='-rounds 5 -sweep 100,200'] runs one.
bench: services
	$(TEST_ENV) $(GO) run ./cmd/parley-bench $(BENCH_FLAGS) $(BENCH)

# The sample corpus (docs/corpus) is ingested before chatd starts: the
# first time it is embedded and indexed, later an unchanged corpus costs
# nothing (chunk IDs are derived from content). Each topic folder keeps its
# name as the documents' prefix, as the labelled questions expect.
CORPUS_TOPICS = education finance housing jobs welfare

corpus: services
	$(GO) build -o bin/chatctl ./cmd/chatctl
	$(RUN_ENV) bin/chatctl migrate up
	@for d in $(CORPUS_TOPICS); do \
		$(RUN_ENV) bin/chatctl ingest --prefix $$d/ docs/corpus/$$d || exit 1; \
	done

run: services corpus
	$(RUN_ENV) $(GO) run ./cmd/chatd

build:
	$(GO) build ./...

# The fault suite (not part of make test; about 3 minutes): chatd as a
# real process on its own private PostgreSQL and Redis (started on free
# ports in a temporary directory; the shared servers are never touched),
# kill -9s of chatd, PostgreSQL stopped and crashed mid-stream, Redis
# paused, flushed and restarted empty, and one table of what each left
# behind; then the fuzz targets of client input, FUZZTIME each.
FUZZTIME ?= 30s
CHAOS_FLAGS ?=

chaos:
	$(GO) build -o bin/chatd ./cmd/chatd
	$(GO) run ./cmd/parley-chaos --chatd bin/chatd $(CHAOS_FLAGS)
	$(GO) test -run '^$$' -fuzz '^FuzzClientFrame$$' -fuzztime $(FUZZTIME) ./adapters/wsapi
	$(GO) test -run '^$$' -fuzz '^FuzzVerify$$' -fuzztime $(FUZZTIME) ./adapters/jwtauth
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeObject$$' -fuzztime $(FUZZTIME) ./adapters/strictjson
