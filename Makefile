# Ferry's two everyday commands are `make test` and `make bench`.
GO ?= go

.PHONY: test deps vet unit fuzz bench

# test installs missing test servers, then vets and runs every test with the
# race detector, then fuzzes the routing parser briefly.
test: deps vet unit fuzz

deps:
	@bash scripts/test-deps.sh

vet:
	$(GO) vet ./...

unit:
	$(GO) test -race -count=1 -timeout 20m ./...

fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime 10s ./routing
	$(GO) test -run '^$$' -fuzz '^FuzzParseRules$$' -fuzztime 5s ./routing

# bench runs every benchmark once; each compares Ferry with its baseline in
# the same run and prints `ferry-bench:` lines with the ratio.
bench: deps
	$(GO) test -run '^$$' -bench . -timeout 60m ./... 2>&1 | tee bench.out
	@echo; echo "== Ferry vs baselines (same run) =="; $(GO) run ./internal/benchreport/cmd bench.out
