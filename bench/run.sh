#!/usr/bin/env bash
# Runs every ECS benchmark against its raw-engine floor, in release, and writes
#
#   bench/results/<UTC time>.txt              everything the benchmarks print
#   bench/results/<UTC time>.md               the generated Markdown block: date,
#                                             command, machine, versions, then the
#                                             figures tables (`--markdown` of
#                                             `harness` and `propagation`)
#   bench/results/propagation-<UTC time>.svg  propagation latency by subscriber count
#
# A full run (no --quick) then publishes them: the block replaces the lines
# between `<!-- bench:results:begin -->` and `<!-- bench:results:end -->` in
# docs/benchmarks.md (bench/splice-results.sh; the run refuses to start if the
# markers are missing) and the chart is copied to docs/propagation.svg.
# A --quick run writes bench/results/ only and leaves docs/ untouched; so does a
# run with ECS_BENCH_SKIP_PROPAGATION=1, whose block has no propagation figures.
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
propagation=1
if [[ -n ${ECS_BENCH_SKIP_PROPAGATION:-} ]]; then propagation=0; fi
publish=0
if [[ ${#quick[@]} -eq 0 && $propagation == 1 ]]; then publish=1; fi
docs=docs/benchmarks.md
if ((publish)); then
  # Fail now rather than after the whole run.
  bench/splice-results.sh --check "$docs"
fi

cargo build --release -p ecs-bench
mkdir -p bench/results
stamp=$(date -u +%Y%m%dT%H%M%SZ)
out="bench/results/$stamp.txt"
md="bench/results/$stamp.md"
chart="bench/results/propagation-$stamp.svg"
pg_version() {
  local bin
  bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
  if [[ -n $bin ]]; then "$bin/postgres" --version; else postgres --version 2>/dev/null || echo unknown; fi
}
started=$(date -u +%FT%TZ)
command="bench/run.sh${*:+ $*}"
machine="$(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(awk '/MemTotal/ {printf "%.1f GiB RAM", $2/1048576}' /proc/meminfo)"
nats_version=$(${ECS_NATS_SERVER:-nats-server} --version)
postgres_version=$(pg_version)
rustc_version=$(rustc --version)
{
  echo "# ecs-bench $started"
  echo "command: $command"
  echo "machine: $machine"
  echo "nats-server: $nats_version"
  echo "postgres: $postgres_version"
  echo "rustc: $rustc_version"
} | tee "$out"

# The generated block starts with the run's identity; the benchmarks append
# their tables (`--markdown`).
published=""
if ((publish)); then published=", copied to \`docs/propagation.svg\`"; fi
{
  if [[ ${#quick[@]} -gt 0 ]]; then
    echo "**Smoke run (\`--quick\`): small data and short loads; not figures to quote.**"
    echo
  fi
  echo "| | |"
  echo "| --- | --- |"
  echo "| date | $started |"
  echo "| command | \`$command\` |"
  echo "| machine | $machine |"
  echo "| nats-server | ${nats_version#nats-server: } |"
  echo "| PostgreSQL | ${postgres_version#postgres (PostgreSQL) } |"
  echo "| rustc | ${rustc_version#rustc } |"
  echo "| raw output | \`$out\` |"
  if ((propagation)); then
    echo "| chart | \`$chart\`$published |"
  fi
  echo
  echo "### Against the raw engines (\`harness\`)"
  echo
} >"$md"

for bench in reads writes rebuild,pit scale validation flags; do
  target/release/harness --bench "$bench" --markdown "$md" "$@" 2>&1 | tee -a "$out"
done
if ((propagation)); then
  printf '\n### Change propagation (`propagation`)\n\n' >>"$md"
  echo -e "\n## propagation" | tee -a "$out"
  if [[ ${#quick[@]} -gt 0 ]]; then
    target/release/propagation --subscribers 1,100 --rounds 20 --chart "$chart" --markdown "$md" 2>&1 | tee -a "$out"
  else
    target/release/propagation --chart "$chart" --markdown "$md" 2>&1 | tee -a "$out"
  fi
else
  printf '\n(propagation left out: ECS_BENCH_SKIP_PROPAGATION is set)\n' >>"$md"
fi

echo "results: $out, $md"
if ((publish)); then
  bench/splice-results.sh "$md" "$docs"
  cp "$chart" docs/propagation.svg
  echo "published: $docs (between the bench:results markers), docs/propagation.svg"
else
  echo "docs/ left untouched (--quick or ECS_BENCH_SKIP_PROPAGATION run)"
fi
