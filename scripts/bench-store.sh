#!/usr/bin/env bash
# bench-store: the store's benchmarks on both backends (issue 4).
#
#  1. The write rate: classified rows per second recorded through the real
#     repository in the consumer's batches (go test -bench; save the output
#     and compare runs with benchstat).
#  2. ListMessages p50/p99 over 1,000,000 messages of 100 users, in process
#     and through the gateway of `mailroom dev` (storebench).
#
# TEST_DATABASE_URL names the Postgres server (scratch databases are created
# and dropped on it). BENCH_TIME and BENCH_COUNT tune the write benchmark;
# arguments are passed to storebench (e.g. -per-user 1000 -by-kind).
set -euo pipefail
cd "$(dirname "$0")/.."

export TEST_DATABASE_URL="${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test?sslmode=disable}"
export MAILROOM_REQUIRE_POSTGRES=1

echo "== Write rate: rows/s per batch kind (batches of 500, 2 writers: the consumer's defaults)"
go test -run '^$' -bench '^BenchmarkWrite$' -benchtime "${BENCH_TIME:-3s}" -count "${BENCH_COUNT:-1}" \
	./services/store/internal/bench/ | grep -E '^(Benchmark|ok|FAIL)'

echo
echo "== ListMessages latency"
mkdir -p .bin
go build -o .bin/mailroom ./cmd/mailroom
go run ./services/store/internal/bench/cmd/storebench -mailroom .bin/mailroom "$@"
