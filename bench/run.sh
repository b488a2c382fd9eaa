#!/usr/bin/env bash
# Runs every ECS benchmark against its raw-engine floor, in release, and writes
# the results to bench/results/<UTC time>.txt (and prints them); the
# propagation chart goes to bench/results/propagation-<UTC time>.svg (the one
# in docs/ is only rewritten by running `propagation` directly).
#
#   bench/run.sh                 # full run: 1,000,000 events, 10 s per load, 32 clients
#   bench/run.sh --quick         # smoke run: 50,000 events, 3 s per load
#   bench/run.sh --events 200000 --seconds 5 --concurrency 16
#
# Each benchmark runs in its own process (so the scale figures' RSS is not
# inflated by earlier runs), starts its own nats-server and PostgreSQL
# database on 127.0.0.1 and stops them when it ends. Needs nats-server (2.10+)
# and PostgreSQL (initdb/pg_ctl, or ECS_TEST_PG_URL), as the tests do.
# Set ECS_BENCH_SKIP_PROPAGATION=1 to leave out the propagation benchmark.
set -euo pipefail
cd "$(dirname "$0")/.."

quick=()
for a in "$@"; do [[ $a == --quick ]] && quick=(--quick); done

cargo build --release -p ecs-bench
mkdir -p bench/results
stamp=$(date -u +%Y%m%dT%H%M%SZ)
out="bench/results/$stamp.txt"
pg_version() {
  local bin
  bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
  if [[ -n $bin ]]; then "$bin/postgres" --version; else postgres --version 2>/dev/null || echo unknown; fi
}
{
  echo "# ecs-bench $(date -u +%FT%TZ)"
  echo "command: bench/run.sh $*"
  echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(awk '/MemTotal/ {printf "%.1f GiB RAM", $2/1048576}' /proc/meminfo)"
  echo "nats-server: $(${ECS_NATS_SERVER:-nats-server} --version)"
  echo "postgres: $(pg_version)"
  echo "rustc: $(rustc --version)"
} | tee "$out"

for bench in reads writes rebuild,pit scale; do
  target/release/harness --bench "$bench" "$@" 2>&1 | tee -a "$out"
done
if [[ -z ${ECS_BENCH_SKIP_PROPAGATION:-} ]]; then
  echo -e "\n## propagation" | tee -a "$out"
  if [[ ${#quick[@]} -gt 0 ]]; then
    target/release/propagation --subscribers 1,100 --rounds 20 --chart "bench/results/propagation-$stamp.svg" 2>&1 | tee -a "$out"
  else
    target/release/propagation --chart "bench/results/propagation-$stamp.svg" 2>&1 | tee -a "$out"
  fi
fi
echo "results: $out"
