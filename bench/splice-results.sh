#!/usr/bin/env bash
# Publishes a run's generated results block in docs/benchmarks.md: replaces the
# lines between the marker lines
#
#   <!-- bench:results:begin -->
#   <!-- bench:results:end -->
#
# with the contents of a block file written by bench/run.sh
# (bench/results/<UTC time>.md). bench/run.sh calls it at the end of a full run;
# run it by hand to publish a saved run again. It fails, changing nothing,
# unless the document holds each marker exactly once, on a line of its own,
# begin before end (and the block holds neither).
#
#   bench/splice-results.sh bench/results/<UTC time>.md [docs/benchmarks.md]
#   bench/splice-results.sh --check [docs/benchmarks.md]   # only check the markers
set -euo pipefail

begin='<!-- bench:results:begin -->'
end='<!-- bench:results:end -->'

die() {
  echo "splice-results: $*" >&2
  exit 1
}

count() { grep -cxF -- "$1" "$2" || true; }

check_markers() {
  local doc=$1
  [[ -f $doc ]] || die "$doc: no such file"
  [[ $(count "$begin" "$doc") == 1 ]] || die "$doc: needs exactly one line '$begin'"
  [[ $(count "$end" "$doc") == 1 ]] || die "$doc: needs exactly one line '$end'"
  local b e
  b=$(grep -nxF -- "$begin" "$doc" | cut -d: -f1)
  e=$(grep -nxF -- "$end" "$doc" | cut -d: -f1)
  ((b < e)) || die "$doc: '$begin' must come before '$end'"
}

if [[ ${1:-} == --check ]]; then
  check_markers "${2:-docs/benchmarks.md}"
  exit 0
fi
[[ $# -ge 1 && $# -le 2 ]] || die "usage: $0 <block.md> [docs/benchmarks.md] | $0 --check [doc]"
block=$1
doc=${2:-docs/benchmarks.md}
[[ -f $block && -r $block ]] || die "$block: no such file"
[[ -s $block ]] || die "$block is empty"
check_markers "$doc"
[[ $(count "$begin" "$block") == 0 && $(count "$end" "$block") == 0 ]] ||
  die "$block must not contain the markers"

tmp=$(mktemp "$doc.XXXXXX")
trap 'rm -f "$tmp"' EXIT
# Marker lines kept, one blank line inside each, the old block dropped.
awk -v begin="$begin" -v end="$end" -v block="$block" '
  $0 == begin {
    print; print ""
    while ((status = (getline line < block)) > 0) print line
    if (status < 0) exit 2
    close(block)
    print ""
    skip = 1
    next
  }
  $0 == end { skip = 0 }
  !skip { print }
' "$doc" >"$tmp" || die "could not read $block"
chmod --reference="$doc" "$tmp"
mv "$tmp" "$doc"
echo "splice-results: $doc now holds $block"
