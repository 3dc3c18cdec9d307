# Ferry's two everyday commands are `make test` and `make bench`.
GO ?= go

.PHONY: test deps vet cross unit fuzz bench

# test installs missing test servers, then vets, checks that the library
# builds for macOS and Windows, runs every test with the race detector, then
# fuzzes the routing parser briefly.
test: deps vet cross unit fuzz

deps:
	@bash scripts/test-deps.sh

vet:
	$(GO) vet ./...

# cross: Ferry is a library and must build everywhere its hosts do (the
# throwaway test servers report ErrUnavailable off Unix).
cross:
	GOOS=darwin GOARCH=arm64 $(GO) build ./...
	GOOS=windows GOARCH=amd64 $(GO) build ./...

unit:
	$(GO) test -race -count=1 -timeout 20m ./...

# -fuzzminimizetime: minimizing each new input may take 60s by default,
# which used up the whole 10s run (execs stalled at 0/s after 3s).
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime 10s -fuzzminimizetime 1000x ./routing
	$(GO) test -run '^$$' -fuzz '^FuzzParseRules$$' -fuzztime 5s -fuzzminimizetime 1000x ./routing

# bench runs every benchmark once; each compares Ferry with its baseline in
# the same run and prints `ferry-bench:` lines with the ratio.
bench: deps
	$(GO) test -run '^$$' -bench . -timeout 60m ./... 2>&1 | tee bench.out
	@echo; echo "== Ferry vs baselines (same run) =="; $(GO) run ./internal/benchreport/cmd bench.out
