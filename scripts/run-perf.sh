#!/usr/bin/env bash
# The perf command: builds micro-bench (Release) and runs it under every allocator, repetitions
# interleaved, then prints the median ns/op per benchmark and allocator with libmesh's ratios.
#   scripts/run-perf.sh            3 repetitions (a few minutes)
#   scripts/run-perf.sh --quick    1 short repetition (well under a minute)
set -euo pipefail
cd "$(dirname "$0")/.."

usage() {
  cat <<USAGE
usage: scripts/run-perf.sh [--quick] [--reps N] [--allocators LIST] [--build-dir DIR]
                           [--json FILE] [--filter REGEX] [--min-time SEC] [--timeout SEC]
                           [--help]
  Builds micro-bench (Release) and runs it once per allocator and repetition via LD_PRELOAD,
  allocators interleaved within each repetition; prints median ns/op per benchmark and the
  ratios libmesh/jemalloc and libmesh/mimalloc (per repetition, then median).
  --quick             1 repetition with a short minimum time per benchmark
  --reps N            repetitions (default 3; 1 with --quick)
  --allocators LIST   comma-separated, from glibc,jemalloc,tcmalloc,mimalloc,libmesh (the
                      default is all of them), or NAME=/path/to/lib.so for any other
  --build-dir DIR     build directory (default: build)
  --json FILE         also write every raw figure and the summary as JSON
  --filter REGEX      only benchmarks matching REGEX (google-benchmark --benchmark_filter)
  --min-time SEC      minimum time per benchmark (default 0.2; 0.05 with --quick)
  --timeout SEC       give up on one micro-bench run after SEC seconds (default 300)
  --help              show this text
  An allocator whose library is missing (or libmesh when it does not build) is skipped with a
  note. Exit status: 0 when every run completed, 1 when a run failed (crash, timeout, benchmark
  error; the table still shows what completed), 2 on bad usage.
USAGE
}

log() { echo "run-perf: $*" >&2; }
orig_args="$*"

quick=0
reps=""
allocators="glibc,jemalloc,tcmalloc,mimalloc,libmesh"
build=build
json=""
filter=""
min_time=""
timeout_s=300

need_value() {  # flag, remaining argument count
  if [ "$2" -lt 2 ]; then
    echo "run-perf.sh: $1 needs a value" >&2
    usage >&2
    exit 2
  fi
}
while [ $# -gt 0 ]; do
  case "$1" in
    --*=*) set -- "${1%%=*}" "${1#*=}" "${@:2}"; continue ;;  # --flag=value -> --flag value
    --quick) quick=1 ;;
    --reps) need_value "$1" $#; reps=$2; shift ;;
    --allocators) need_value "$1" $#; allocators=$2; shift ;;
    --build-dir) need_value "$1" $#; build=$2; shift ;;
    --json) need_value "$1" $#; json=$2; shift ;;
    --filter) need_value "$1" $#; filter=$2; shift ;;
    --min-time) need_value "$1" $#; min_time=$2; shift ;;
    --timeout) need_value "$1" $#; timeout_s=$2; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "run-perf.sh: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
  esac
  shift
done

bad_usage() { echo "run-perf.sh: $*" >&2; usage >&2; exit 2; }
[ -n "$reps" ] || reps=$([ "$quick" = 1 ] && echo 1 || echo 3)
[ -n "$min_time" ] || min_time=$([ "$quick" = 1 ] && echo 0.05 || echo 0.2)
[[ "$reps" =~ ^[1-9][0-9]*$ ]] || bad_usage "--reps needs a positive integer, got '$reps'"
[[ "$timeout_s" =~ ^[1-9][0-9]*$ ]] ||
  bad_usage "--timeout needs a positive integer, got '$timeout_s'"
[[ "$min_time" =~ ^[0-9]*\.?[0-9]+$ ]] ||
  bad_usage "--min-time needs a number of seconds, got '$min_time'"

# Allocator names -> libraries ("-" = no preload). libmesh's path is known only after the build.
LIBDIR=/usr/lib/x86_64-linux-gnu
names=()
declare -A libs=()
IFS=',' read -r -a requested <<<"$allocators"
for spec in "${requested[@]}"; do
  spec=${spec//[[:space:]]/}
  case "$spec" in
    "") continue ;;
    glibc) name=glibc lib=- ;;
    jemalloc) name=jemalloc lib=$LIBDIR/libjemalloc.so.2 ;;
    tcmalloc) name=tcmalloc lib=$LIBDIR/libtcmalloc_minimal.so.4 ;;
    mimalloc) name=mimalloc lib=$LIBDIR/libmimalloc.so.2 ;;
    libmesh|mesh) name=libmesh lib=@libmesh ;;
    *=*) name=${spec%%=*} lib=${spec#*=}
         [[ "$name" =~ ^[A-Za-z0-9_.+-]+$ && -n "$lib" ]] || bad_usage "bad allocator spec '$spec'" ;;
    *) bad_usage "unknown allocator '$spec' (known: glibc, jemalloc, tcmalloc, mimalloc, libmesh)" ;;
  esac
  [ -z "${libs[$name]+x}" ] || bad_usage "allocator '$name' given twice"
  names+=("$name")
  libs[$name]=$lib
done
[ ${#names[@]} -gt 0 ] || bad_usage "--allocators is empty"

# --- dependencies and build -------------------------------------------------------------------
scripts/install-deps.sh

mkdir -p "$build"
build_log="$build/run-perf-build.log"
: >"$build_log"
bench=""
mesh_problem=""
want_mesh=0
if [ "${libs[libmesh]+x}" ] && [ "${libs[libmesh]}" = @libmesh ]; then want_mesh=1; fi

# Configures DIR from the top level (extra cmake arguments follow) and builds micro-bench and,
# when wanted, libmesh. Fails only if the tree does not configure or micro-bench does not build.
build_tree() {
  local dir=$1
  shift
  cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=Release "$@" >>"$build_log" 2>&1 || return 1
  log "building micro-bench in $dir"
  if ! cmake --build "$dir" -j2 --target micro-bench >>"$build_log" 2>&1; then
    log "error: micro-bench does not build; see $build_log"
    tail -n 30 "$build_log" >&2
    exit 1
  fi
  bench=$dir/perf/micro-bench
  if [ "$want_mesh" = 1 ]; then
    log "building libmesh in $dir"
    if cmake --build "$dir" -j2 --target mesh >>"$build_log" 2>&1; then
      libs[libmesh]=$(realpath "$dir/mesh/libmesh.so")
    else
      mesh_problem="libmesh does not build (cmake --build $dir --target mesh; log: $build_log)"
    fi
  fi
}

log "configuring $build (Release)"
if build_tree "$build"; then
  :
# A tree that does not configure is typically mid-change. Measure what can be measured: first
# without the tests (in a directory of its own, so $build keeps its settings), then perf alone.
elif log "warning: the project does not configure (log: $build_log); retrying without tests" &&
     build_tree "$build/perf-notests" -DMESH_BUILD_TESTS=OFF -DMESH_BUILD_FUZZ=OFF; then
  :
else
  log "warning: not even without tests (log: $build_log); building micro-bench alone"
  mesh_problem="the project does not configure (cmake -S . -B $build; log: $build_log)"
  if ! { cmake -S perf -B "$build/perf-standalone" -DCMAKE_BUILD_TYPE=Release &&
         cmake --build "$build/perf-standalone" -j2 --target micro-bench; } >>"$build_log" 2>&1; then
    log "error: micro-bench does not build; see $build_log"
    tail -n 30 "$build_log" >&2
    exit 1
  fi
  bench=$build/perf-standalone/micro-bench
fi
bench=$(realpath "$bench")

# --- runs -------------------------------------------------------------------------------------
stamp=$(date +%Y%m%d-%H%M%S)
outdir=$(realpath -m "$build/perf-results/$stamp")
mkdir -p "$outdir"
manifest=$outdir/manifest.tsv
{
  printf '# scripts/run-perf.sh %s\n' "$orig_args"
  printf 'meta\tsuite\tmicro\n'
  printf 'meta\tgit_commit\t%s\n' "$(git rev-parse --short=12 HEAD 2>/dev/null || echo none)"
  dirty=no
  [ -z "$(git status --porcelain 2>/dev/null)" ] || dirty=yes
  printf 'meta\tgit_dirty\t%s\n' "$dirty"
  printf 'meta\treps\t%s\n' "$reps"
  printf 'meta\tmin_time\t%s\n' "$min_time"
  printf 'meta\tquick\t%s\n' "$quick"
  printf 'meta\tfilter\t%s\n' "$filter"
  printf 'meta\tkernel\t%s\n' "$(uname -r)"
  printf 'meta\tbenchmark_binary\t%s\n' "$bench"
} >"$manifest"

active=()
for name in "${names[@]}"; do
  lib=${libs[$name]}
  if [ "$lib" = @libmesh ]; then
    log "libmesh: SKIPPED - $mesh_problem"
    printf 'skipped\t%s\t%s\n' "$name" "$mesh_problem" >>"$manifest"
  elif [ "$lib" != - ] && [ ! -f "$lib" ]; then
    log "$name: SKIPPED - $lib not found"
    printf 'skipped\t%s\t%s not found\n' "$name" "$lib" >>"$manifest"
  else
    active+=("$name")
    printf 'allocator\t%s\t%s\n' "$name" "$lib" >>"$manifest"
  fi
done
if [ ${#active[@]} -eq 0 ]; then
  log "error: no allocator left to measure"
  exit 1
fi

# One process per (benchmark, allocator): every allocator runs a benchmark back to back before
# the next benchmark starts, so a burst of machine noise lands on all allocators alike and the
# per-repetition ratios compare figures taken seconds apart. It also gives every benchmark a
# fresh heap and keeps a crash in one benchmark from hiding the others.
list_args=()
[ -z "$filter" ] || list_args+=(--benchmark_filter="$filter")
mapfile -t benchmarks < <("$bench" --benchmark_list_tests "${list_args[@]}")
if [ ${#benchmarks[@]} -eq 0 ]; then
  log "error: no benchmark matches --filter '$filter' (see: $bench --benchmark_list_tests)"
  exit 1
fi

# Prints the command line reproducing one run (for failure messages).
reproducer() {
  local lib=$1 regex=$2
  local pre=""
  [ "$lib" = - ] || pre="LD_PRELOAD=$lib "
  printf '%s%q' "$pre" "$bench"
  printf ' %q' --benchmark_min_time="$min_time" --benchmark_filter="$regex"
}

n=${#active[@]}
nb=${#benchmarks[@]}
failures=0
declare -A shown_tail=()
log "$nb benchmark(s) x $n allocator(s) x $reps repetition(s); results go to $outdir"
for ((rep = 1; rep <= reps; rep++)); do
  for ((i = 0; i < nb; i++)); do
    bname=${benchmarks[$i]}
    regex="^$(printf '%s' "$bname" | sed 's/[][\.*^$+?(){}|]/\\&/g')\$"
    status=""
    for ((k = 0; k < n; k++)); do
      # Rotate the order for every benchmark and repetition so no allocator always runs first
      # or right after the same neighbour.
      name=${active[$(((k + i + rep - 1) % n))]}
      lib=${libs[$name]}
      stem=$outdir/rep$rep-b$(printf '%02d' "$i")-$name
      if [ "$lib" = - ]; then
        expect=libc.so; env_args=()
      else
        expect=$lib; env_args=(LD_PRELOAD="$lib")
      fi
      t0=$(date +%s.%N)
      rc=0
      # In a real subshell (the '|| exit' stops bash from exec'ing the command directly) whose
      # stderr is discarded: bash's own "Segmentation fault" job message would only duplicate
      # the line below. The benchmark's output goes to $stem.log.
      (timeout -k 10 "$timeout_s" env "${env_args[@]}" "$bench" --expect-malloc-from="$expect" \
        --benchmark_min_time="$min_time" --benchmark_filter="$regex" \
        --benchmark_out_format=json --benchmark_out="$stem.json" >"$stem.log" 2>&1 || exit $?) 2>/dev/null ||
        rc=$?
      secs=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')
      printf 'run\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$rep" "$rc" "$secs" "$stem.json" "$bname" \
        >>"$manifest"
      if [ "$rc" = 0 ]; then
        status+=" $name"
        continue
      fi
      failures=$((failures + 1))
      case $rc in
        124) why="timed out after ${timeout_s}s" ;;
        3) why="malloc did not come from $expect (preload ignored?)" ;;
        *) if [ "$rc" -gt 128 ]; then
             why="killed by SIG$(kill -l $((rc - 128)) 2>/dev/null || echo "NAL $((rc - 128))")"
           else
             why="exit $rc"
           fi ;;
      esac
      status+=" $name:FAILED"
      log "[rep $rep/$reps] $bname: $name FAILED ($why) after ${secs}s; output: $stem.log"
      if [ -z "${shown_tail[$name]+x}" ]; then  # the first failure of an allocator in full
        shown_tail[$name]=1
        tail -n 5 "$stem.log" | sed 's/^/run-perf:   | /' >&2
      fi
      log "  reproduce: $(reproducer "$lib" "$regex")"
    done
    log "[rep $rep/$reps] ($((i + 1))/$nb) $bname:$status"
  done
done

# --- summary ----------------------------------------------------------------------------------
table_args=(--manifest "$manifest")
[ -z "$json" ] || table_args+=(--json "$json")
echo >&2
table_rc=0
/usr/bin/python3 scripts/perf_table.py "${table_args[@]}" || table_rc=$?
[ -z "$json" ] || [ "$table_rc" != 0 ] || log "raw figures written to $json"
log "raw outputs and manifest: $outdir"
if [ "$table_rc" != 0 ] || [ "$failures" != 0 ]; then
  exit 1
fi
exit 0
