#!/usr/bin/env bash
# Fuzzes allocation sequences on fresh heaps for a while (fuzz/README.md).
#   scripts/run-fuzz.sh SECONDS [--jobs N] [--build-dir DIR]
# Configures a clang build (default build-fuzz, MESH_BUILD_FUZZ=ON), builds the libFuzzer harness
# mesh-fuzz-heap (ASan + UBSan), runs it for SECONDS over a working copy of fuzz/corpus, copies
# any crashing input into fuzz/regressions/, and prints executions, executions per second and
# coverage from libFuzzer's final statistics. Exit status: 0 no crash, 1 crash found (or the run
# failed), 2 usage error.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

usage() {
  cat <<USAGE
usage: scripts/run-fuzz.sh SECONDS [--jobs N] [--build-dir DIR] [--help]
  Builds the libFuzzer harness with clang (ASan + UBSan) and fuzzes for SECONDS.
  SECONDS          how long each job fuzzes (a positive integer)
  --jobs N         N fuzzing processes in parallel (default 1; each runs SECONDS)
  --build-dir DIR  clang build directory (default: build-fuzz)
  Crashing inputs are copied to fuzz/regressions/ (replayed by ctest -L fuzz).
  The working corpus (seeds plus what the fuzzer found) is DIR/fuzz-work/corpus.
USAGE
}

seconds=""
jobs=1
build=build-fuzz
while [ $# -gt 0 ]; do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    --jobs)
      [ $# -ge 2 ] || { usage >&2; exit 2; }
      jobs=$2; shift ;;
    --jobs=*) jobs=${1#--jobs=} ;;
    --build-dir)
      [ $# -ge 2 ] || { usage >&2; exit 2; }
      build=$2; shift ;;
    -*) echo "run-fuzz.sh: unknown option '$1'" >&2; usage >&2; exit 2 ;;
    *)
      [ -z "$seconds" ] || { echo "run-fuzz.sh: unexpected argument '$1'" >&2; usage >&2; exit 2; }
      seconds=$1 ;;
  esac
  shift
done
if ! [[ "$seconds" =~ ^[1-9][0-9]*$ ]]; then
  echo "run-fuzz.sh: SECONDS must be a positive integer" >&2; usage >&2; exit 2
fi
if ! [[ "$jobs" =~ ^[1-9][0-9]*$ ]]; then
  echo "run-fuzz.sh: --jobs needs a positive integer" >&2; usage >&2; exit 2
fi
for tool in clang clang++ cmake; do
  command -v "$tool" >/dev/null || { echo "run-fuzz.sh: $tool not found (scripts/install-deps.sh)" >&2; exit 1; }
done

case "$build" in
  /*) ;;
  *) build=$root/$build ;;
esac

echo "run-fuzz.sh: configuring $build (clang, MESH_BUILD_FUZZ=ON)"
mkdir -p "$build"
CC=clang CXX=clang++ cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMESH_BUILD_FUZZ=ON \
  -DMESH_BUILD_TESTS=OFF -DMESH_BUILD_PERF=OFF >"$build/run-fuzz-configure.log" 2>&1 || {
  cat "$build/run-fuzz-configure.log" >&2; exit 1; }
echo "run-fuzz.sh: building mesh-fuzz-heap"
cmake --build "$build" -j"$(nproc)" --target mesh-fuzz-heap >"$build/run-fuzz-build.log" 2>&1 || {
  tail -n 40 "$build/run-fuzz-build.log" >&2; exit 1; }
harness=$build/fuzz/mesh-fuzz-heap

work=$build/fuzz-work
mkdir -p "$work/corpus" "$work/artifacts" "$work/logs"
cp -n fuzz/corpus/* "$work/corpus/" 2>/dev/null || true
rm -f "$work/artifacts"/* "$work/logs"/*

# Each input builds and destroys a GlobalHeap (its metadata is unmapped with it). Give each
# job room, within the machine's memory.
rss_limit=$((20000 / jobs))
[ "$rss_limit" -gt 8192 ] && rss_limit=8192

echo "run-fuzz.sh: fuzzing for ${seconds}s with $jobs job(s); corpus $work/corpus"
set +e
if [ "$jobs" = 1 ]; then
  (cd "$work/logs" && "$harness" -max_total_time="$seconds" -print_final_stats=1 -timeout=60 -rss_limit_mb="$rss_limit" \
     -artifact_prefix="$work/artifacts/" "$work/corpus" >fuzz-0.log 2>&1)
  status=$?
else
  # libFuzzer's fork-free parallel mode: each job is a process writing fuzz-<n>.log in the cwd.
  (cd "$work/logs" && "$harness" -max_total_time="$seconds" -print_final_stats=1 -timeout=60 -rss_limit_mb="$rss_limit" \
     -jobs="$jobs" -workers="$jobs" -artifact_prefix="$work/artifacts/" "$work/corpus" \
     >driver.log 2>&1)
  status=$?
fi
set -e

# Figures from each job's final statistics and its last status line ("#N DONE cov: C ft: F").
execs=0
rate=0
cov=0
ft=0
logs=0
for log in "$work/logs"/fuzz-*.log; do
  [ -f "$log" ] || continue
  logs=$((logs + 1))
  n=$(sed -n 's/^stat::number_of_executed_units: *\([0-9]*\).*/\1/p' "$log" | tail -n 1)
  r=$(sed -n 's/^stat::average_exec_per_sec: *\([0-9]*\).*/\1/p' "$log" | tail -n 1)
  last=$(grep -E '^#[0-9]+[[:space:]].* cov: [0-9]+ ft: [0-9]+' "$log" | tail -n 1 || true)
  c=$(sed -n 's/.* cov: \([0-9]*\) ft: \([0-9]*\).*/\1/p' <<<"$last")
  f=$(sed -n 's/.* cov: \([0-9]*\) ft: \([0-9]*\).*/\2/p' <<<"$last")
  execs=$((execs + ${n:-0}))
  rate=$((rate + ${r:-0}))
  [ "${c:-0}" -gt "$cov" ] && cov=$c
  [ "${f:-0}" -gt "$ft" ] && ft=$f
done

crashes=0
for art in "$work/artifacts"/crash-* "$work/artifacts"/leak-* "$work/artifacts"/oom-* \
           "$work/artifacts"/timeout-*; do
  [ -f "$art" ] || continue
  name=$(basename "$art")
  cp "$art" "fuzz/regressions/$name"
  echo "run-fuzz.sh: saved fuzz/regressions/$name"
  crashes=$((crashes + 1))
done

corpus_files=$(find "$work/corpus" -type f | wc -l)
echo "run-fuzz.sh: ${seconds}s x $jobs job(s): $execs executions, $rate exec/s," \
     "coverage cov: $cov ft: $ft, corpus $corpus_files inputs, $crashes crash(es)"
if [ "$crashes" -gt 0 ]; then
  echo "run-fuzz.sh: replay with: $harness fuzz/regressions/<file>  (or ctest -L fuzz)" >&2
  exit 1
fi
if [ "$logs" = 0 ] || { [ "$status" != 0 ] && [ "$execs" = 0 ]; }; then
  echo "run-fuzz.sh: the fuzzer did not run (status $status); see $work/logs" >&2
  exit 1
fi
exit 0
