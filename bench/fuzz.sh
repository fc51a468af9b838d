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

failed=()
n=0
while read -r dir name; do
  n=$((n + 1))
  pkg=./${dir#./}
  printf '== %s %s (%s)\n' "$pkg" "$name" "$fuzztime"
  set +e
  go test -run='^$' -fuzz="^${name}\$" -fuzztime="$fuzztime" -fuzzminimizetime="$minimize" "$pkg" 2>&1 |
    grep -v '^fuzz: elapsed: .*, execs: .*new interesting'
  status=${PIPESTATUS[0]}
  set -e
  if [ "$status" -ne 0 ]; then
    failed+=("$pkg $name")
  fi
done <<<"$targets"

echo
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzzing failed (${#failed[@]} of $n targets); failing inputs are under each package's testdata/fuzz/:"
  printf '  %s\n' "${failed[@]}"
  exit 1
fi
echo "fuzzing passed: $n targets, $fuzztime each"
