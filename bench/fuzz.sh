#!/usr/bin/env bash
# Runs every fuzz target in the module (every `func FuzzX(f *testing.F)` in
# a *_test.go file) for a bounded time each: the seed corpus committed
# under <package>/testdata/fuzz/FuzzX/ first, then new inputs.
#
#   bench/fuzz.sh                 every target, 10 s each
#   FUZZTIME=1m bench/fuzz.sh     longer
#   bench/fuzz.sh ./sdk ./ca      only these package directories
#
# A failing input is written by `go test` to
# <package>/testdata/fuzz/FuzzX/<hash>: commit it with the fix, so that
# plain `go test` replays it from then on. The script goes on with the
# other targets and exits non-zero if any failed.
#
# Go 1.26's fuzzing coordinator can report a bare "context deadline
# exceeded" as -fuzztime ends, on a loaded machine, with no failing input
# (golang/go#75804, fixed in Go 1.27). Such a run is tried once more; a
# second one is reported as a flake, not a failure. Any run that wrote a
# failing input, or failed any other way, fails.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=/usr/local/go/bin:$PATH
fuzztime=${FUZZTIME:-10s}
# Minimising an input counts against no limit of its own unless bounded.
minimize=${FUZZMINIMIZETIME:-5s}

dirs=("$@")
if [ ${#dirs[@]} -eq 0 ]; then
  dirs=(.)
fi

# "<dir> <FuzzName>" for every target, sorted, vendored and hidden
# directories skipped.
targets=$(grep -rHo --include='*_test.go' '^func Fuzz[A-Za-z0-9_]*(f \*testing\.F)' "${dirs[@]}" |
  sed -E 's|^(.*)/[^/]*_test\.go:func (Fuzz[A-Za-z0-9_]*)\(.*$|\1 \2|' |
  grep -v -e '/\.' -e '/vendor/' -e '/testdata/' | sort -u)
if [ -z "$targets" ]; then
  echo "no fuzz targets under ${dirs[*]}" >&2
  exit 1
fi

out=$(mktemp)
trap 'rm -f "$out"' EXIT

# fuzz_once runs one target once, its output also in $out; it prints the
# corpus files before and after to compare.
fuzz_once() {
  local pkg=$1 name=$2 status
  set +e
  go test -run='^$' -fuzz="^${name}\$" -fuzztime="$fuzztime" -fuzzminimizetime="$minimize" "$pkg" 2>&1 |
    grep -v '^fuzz: elapsed: .*, execs: .*new interesting' | tee "$out"
  status=${PIPESTATUS[0]}
  set -e
  return "$status"
}

# deadline_flake: the last run failed with the coordinator's bare deadline
# error and wrote nothing.
deadline_flake() {
  local corpus=$1 before=$2
  grep -q '^    context deadline exceeded$' "$out" &&
    ! grep -q 'Failing input written' "$out" &&
    ! grep -Eq '^(panic:|\s+\S+_test\.go:[0-9]+:)' "$out" &&
    [ "$(ls "$corpus" 2>/dev/null)" = "$before" ]
}

failed=()
flaked=()
n=0
while read -r dir name; do
  n=$((n + 1))
  pkg=./${dir#./}
  corpus="$dir/testdata/fuzz/$name"
  before=$(ls "$corpus" 2>/dev/null || true)
  printf '== %s %s (%s)\n' "$pkg" "$name" "$fuzztime"
  if fuzz_once "$pkg" "$name"; then
    continue
  fi
  if ! deadline_flake "$corpus" "$before"; then
    failed+=("$pkg $name")
    continue
  fi
  echo "-- a bare deadline error with no failing input (golang/go#75804): once more"
  if fuzz_once "$pkg" "$name"; then
    continue
  fi
  if deadline_flake "$corpus" "$before"; then
    flaked+=("$pkg $name")
  else
    failed+=("$pkg $name")
  fi
done <<<"$targets"

if [ ${#flaked[@]} -gt 0 ]; then
  echo
  echo "the coordinator's deadline error twice, no failing input (golang/go#75804), for:"
  printf '  %s\n' "${flaked[@]}"
fi

echo
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzzing failed (${#failed[@]} of $n targets); failing inputs are under each package's testdata/fuzz/:"
  printf '  %s\n' "${failed[@]}"
  exit 1
fi
echo "fuzzing passed: $n targets, $fuzztime each"
