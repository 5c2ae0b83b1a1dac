#!/usr/bin/env bash
# Runs the stress programs (stress/) under libmesh and peer allocators and prints a summary
# table: exit code, seconds, peak RSS, peak PSS and (libmesh) meshes per program and allocator.
# --record appends the table to results/stress-history.csv and redraws results/index.html.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
readonly root
readonly LIBDIR=/usr/lib/x86_64-linux-gnu
readonly DEFAULT_ALLOCATORS=libmesh,glibc,jemalloc,tcmalloc,mimalloc
readonly PROGRAMS=(test-stress larson fork-stress thread-churn signal-malloc realloc-churn compact-loop hostile-host)

usage() {
  cat <<USAGE
usage: scripts/run-stress.sh [--quick|--long] [--rounds N] [--allocators LIST] [--build-dir DIR]
                             [--record] [--results-dir DIR] [--help]
  Builds the stress programs (and libmesh) if needed, then runs every program under every
  allocator through LD_PRELOAD and prints exit code, seconds, peak RSS and peak PSS of each run,
  and for libmesh the meshes it made (MESH COUNT of MALLOCSTATS=1, which libmesh runs get).
  Exits 1 if any libmesh run failed (failures under other allocators are only reported).
  --quick            CI-size runs, a few seconds each, under 5 minutes in all (default)
  --long             soak runs, a few minutes each: an hour or more in all
  --rounds N         run the whole set N times (default 1); in even rounds libmesh runs with
                     MESH_BACKGROUND_THREAD=1 MESH_FREEPHYS_THREAD=1 MESH_PERIOD_MS=10, so a
                     soak covers the background thread too
  --allocators LIST  comma-separated, from: libmesh glibc jemalloc tcmalloc mimalloc, or
                     NAME=/path/to/lib.so for any other preloadable allocator
                     (default: $DEFAULT_ALLOCATORS; a peer whose .so is missing is skipped)
  --build-dir DIR    build directory (default: build); configured with cmake if it is new
  --record           append every run (commit, mode, program, allocator, exit status, seconds,
                     peak RSS and PSS, meshes) to results/stress-history.csv and redraw the
                     dashboard results/index.html; failed runs are recorded too
  --results-dir DIR  where --record writes (default: results)
  --help             show this text
  Logs of every run and summary.tsv go to DIR/stress-results/.
USAGE
}

usage_error() {
  echo "run-stress.sh: $*" >&2
  usage >&2
  exit 2
}

mode=quick
rounds=1
allocators=$DEFAULT_ALLOCATORS
build=build
record=0
results_dir=$root/results
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) mode=quick ;;
    --long) mode=long ;;
    --rounds)
      [ $# -ge 2 ] || usage_error "--rounds needs a value"
      rounds=$2
      shift
      ;;
    --rounds=*) rounds=${1#--rounds=} ;;
    --allocators)
      [ $# -ge 2 ] || usage_error "--allocators needs a value"
      allocators=$2
      shift
      ;;
    --allocators=*) allocators=${1#--allocators=} ;;
    --build-dir)
      [ $# -ge 2 ] || usage_error "--build-dir needs a value"
      build=$2
      shift
      ;;
    --build-dir=*) build=${1#--build-dir=} ;;
    --record) record=1 ;;
    --results-dir)
      [ $# -ge 2 ] || usage_error "--results-dir needs a value"
      results_dir=$2
      shift
      ;;
    --results-dir=*) results_dir=${1#--results-dir=} ;;
    -h | --help)
      usage
      exit 0
      ;;
    *) usage_error "unknown argument '$1'" ;;
  esac
  shift
done
case "$build" in /*) ;; *) build="$root/$build" ;; esac
case "$results_dir" in /*) ;; *) results_dir="$PWD/$results_dir" ;; esac
[[ "$rounds" =~ ^[1-9][0-9]*$ ]] || usage_error "--rounds needs a positive integer, got '$rounds'"

# hostile-host also runs under vm.overcommit_memory=2 where it may set it (root; it restores it).
strict_overcommit=""
[ "$(id -u)" = 0 ] && [ -w /proc/sys/vm/overcommit_memory ] && strict_overcommit="--strict-overcommit"

# Arguments of each program per mode. Time-based programs get a watchdog a little above their
# run time, so a deadlock ends the run quickly.
args_for() {
  local prog=$1
  if [ "$mode" = quick ]; then
    case "$prog" in
      test-stress) echo "16 10 2000000 --quiet --timeout 120" ;;
      larson) echo "3 8 1000 5000 100 4141 2 --quiet" ;;
      fork-stress) echo "100 --quiet --timeout 60" ;;
      thread-churn) echo "5000 --quiet" ;;
      signal-malloc) echo "3 --quiet --timeout 10" ;;
      realloc-churn) echo "100000 --quiet --timeout 120" ;;
      compact-loop) echo "3 --quiet" ;;
      hostile-host) echo "3 --quiet --timeout 150 $strict_overcommit" ;;
    esac
  else
    case "$prog" in
      test-stress) echo "64 10 200000000 --quiet" ;;
      larson) echo "120 8 1000 5000 100 4141 8 --quiet" ;;
      fork-stress) echo "5000 --threads 4 --quiet --timeout 3000" ;;
      thread-churn) echo "200000 --quiet --timeout 3000" ;;
      signal-malloc) echo "120 --threads 8 --quiet --timeout 150" ;;
      realloc-churn) echo "5000000 --threads 8 --quiet" ;;
      compact-loop) echo "120 --threads 4 --writers 4 --quiet" ;;
      hostile-host) echo "100 --quiet --timeout 3000 $strict_overcommit" ;;
    esac
  fi
}
run_timeout=$([ "$mode" = quick ] && echo 180 || echo 5400)

# --- allocators ----------------------------------------------------------------------------

names=()
libs=() # the .so to preload, empty for glibc
IFS=',' read -r -a requested <<<"$allocators"
for a in "${requested[@]}"; do
  case "$a" in
    libmesh) lib=LIBMESH ;; # resolved after the build
    glibc) lib="" ;;
    jemalloc) lib=$LIBDIR/libjemalloc.so.2 ;;
    tcmalloc) lib=$LIBDIR/libtcmalloc_minimal.so.4 ;;
    mimalloc) lib=$LIBDIR/libmimalloc.so.2 ;;
    ?*=?*)
      lib=${a#*=}
      a=${a%%=*}
      ;;
    *) usage_error "unknown allocator '$a' (known: $DEFAULT_ALLOCATORS, or NAME=/path.so)" ;;
  esac
  if [ -n "$lib" ] && [ "$lib" != LIBMESH ] && [ ! -f "$lib" ]; then
    echo "note: skipping $a: $lib not found"
    continue
  fi
  names+=("$a")
  libs+=("$lib")
done
[ ${#names[@]} -gt 0 ] || { echo "run-stress.sh: no allocator to run" >&2; exit 1; }

# --- setup and build -----------------------------------------------------------------------

if [ "$(id -u)" = 0 ]; then
  "$root/scripts/setup-max-map-count.sh" ||
    echo "warning: could not raise vm.max_map_count; continuing"
else
  "$root/scripts/setup-max-map-count.sh" --check ||
    echo "note: not root; vm.max_map_count left as it is"
fi

want_mesh=0
for lib in "${libs[@]}"; do [ "$lib" = LIBMESH ] && want_mesh=1; done

if [ ! -f "$build/CMakeCache.txt" ]; then
  echo "configuring $build (Release)"
  cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
fi
echo "building the stress programs in $build"
cmake --build "$build" -j"$(nproc)" --target "${PROGRAMS[@]}" >"$build/stress-build.log" 2>&1 || {
  tail -n 30 "$build/stress-build.log" >&2
  echo "run-stress.sh: building the stress programs failed (log: $build/stress-build.log)" >&2
  exit 1
}
mesh_built=0
if [ "$want_mesh" = 1 ]; then
  if cmake --build "$build" -j"$(nproc)" --target mesh >>"$build/stress-build.log" 2>&1; then
    mesh_built=1
  else
    echo "error: building libmesh failed (log: $build/stress-build.log); its runs count as failed"
  fi
fi
bindir=$build/stress
[ -x "$bindir/test-stress" ] || bindir=$build # a build of stress/ on its own
libmesh_so=$build/mesh/libmesh.so

results=$build/stress-results
mkdir -p "$results"
measure="$root/stress/measure.py"

# --- runs ----------------------------------------------------------------------------------

# Table rows: program, allocator, exit, seconds, rss, pss, meshes, note.
rows=()
libmesh_failed=0
total=$((${#PROGRAMS[@]} * ${#names[@]} * rounds))
n=0
start_all=$(date +%s)
for round in $(seq 1 "$rounds"); do
for prog in "${PROGRAMS[@]}"; do
  read -r -a prog_args <<<"$(args_for "$prog")"
  label=$prog
  [ "$rounds" -gt 1 ] && label="$prog#$round"
  for i in "${!names[@]}"; do
    name=${names[$i]}
    lib=${libs[$i]}
    n=$((n + 1))
    env_args=()
    note=""
    if [ "$lib" = LIBMESH ]; then
      lib=$libmesh_so
      env_args+=(--env STRESS_EXPECT_MESH=1 --env MALLOCSTATS=1)
      if [ $((round % 2)) = 0 ]; then
        env_args+=(--env MESH_BACKGROUND_THREAD=1 --env MESH_FREEPHYS_THREAD=1 --env MESH_PERIOD_MS=10)
        note="background thread"
      fi
    fi
    [ -n "$lib" ] && env_args+=(--env "LD_PRELOAD=$lib")
    if [ "$name" = mimalloc ]; then
      # Debian 12's mimalloc 2.0.9 misaligns small posix_memalign requests (mimalloc#700).
      env_args+=(--env STRESS_NO_ALIGNED=1)
      note="no posix_memalign (mimalloc#700)"
    fi
    log="$results/$prog.$name.log"
    [ "$rounds" -gt 1 ] && log="$results/$prog.$name.round$round.log"
    printf '[%2d/%d] %-16s under %-10s ' "$n" "$total" "$label" "$name"

    if [ "$name" = libmesh ] && [ "$mesh_built" = 0 ]; then
      echo "not run: libmesh did not build"
      rows+=("$label|$name|build|-|-|-|-|libmesh did not build")
      libmesh_failed=1
      continue
    fi
    line=$("$measure" --timeout "$run_timeout" --log "$log" "${env_args[@]}" -- \
      "$bindir/$prog" "${prog_args[@]}")
    code=$(sed -n 's/.*exit=\([0-9]*\).*/\1/p' <<<"$line")
    secs=$(sed -n 's/.*seconds=\([0-9.]*\).*/\1/p' <<<"$line")
    rss=$(sed -n 's/.*rss_kb=\([0-9]*\).*/\1/p' <<<"$line")
    pss=$(sed -n 's/.*pss_kb=\([0-9]*\).*/\1/p' <<<"$line")
    # libmesh's MALLOCSTATS report at exit: the last one is the main process's (a forked child
    # that exits normally prints its own first).
    meshes=-
    if [ "$lib" = "$libmesh_so" ] && [ -n "$lib" ]; then
      meshes=$(sed -n 's/^MESH COUNT:[[:space:]]*\([0-9][0-9]*\).*/\1/p' "$log" | tail -n 1)
      meshes=${meshes:--}
    fi
    rss_mb=$(awk -v k="$rss" 'BEGIN { printf "%.1f", k / 1024 }')
    pss_mb=$(awk -v k="$pss" 'BEGIN { printf "%.1f", k / 1024 }')
    if [ "$code" = 0 ]; then
      echo "ok    ${secs} s"
    else
      reason=$(grep -m1 -E 'FAIL|mesh:|double free|corrupt|Segmentation' "$log" | cut -c1-150 || true)
      [ "$code" = 124 ] && reason="killed after ${run_timeout} s"
      echo "FAIL  exit $code, ${secs} s: ${reason:-see $log}"
      if [ "$name" = libmesh ]; then
        libmesh_failed=1
      elif [ "$prog" = signal-malloc ]; then
        note="expected: not signal-reentrant"
      fi
    fi
    rows+=("$label|$name|$code|$secs|$rss_mb|$pss_mb|$meshes|$note")
  done
done
done

# --- summary -------------------------------------------------------------------------------

tsv=$results/summary.tsv
printf 'program\tallocator\texit\tseconds\tpeak_rss_mib\tpeak_pss_mib\tmeshes\tnote\n' >"$tsv"
echo
echo "Summary ($mode mode, $(($(date +%s) - start_all)) s; logs in $results)"
printf '%-16s %-10s %5s %9s %13s %13s %7s  %s\n' program allocator exit seconds "peak RSS MiB" \
  "peak PSS MiB" meshes note
last=""
for row in "${rows[@]}"; do
  IFS='|' read -r prog name code secs rss pss meshes note <<<"$row"
  [ -n "$last" ] && [ "$prog" != "$last" ] && echo
  shown=$prog
  [ "$prog" = "$last" ] && shown=""
  printf '%-16s %-10s %5s %9s %13s %13s %7s  %s\n' "$shown" "$name" "$code" "$secs" "$rss" "$pss" \
    "$meshes" "$note"
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$prog" "$name" "$code" "$secs" "$rss" "$pss" \
    "$meshes" "$note" >>"$tsv"
  last=$prog
done

if [ "$record" = 1 ]; then
  echo
  PYTHONPATH="$root/scripts${PYTHONPATH:+:$PYTHONPATH}" /usr/bin/python3 -m perflib.stresshist \
    --tsv "$tsv" --mode "$mode" --results-dir "$results_dir" ||
    echo "run-stress.sh: warning: recording the stress history failed"
fi

if [ "$libmesh_failed" = 1 ]; then
  echo
  echo "run-stress.sh: FAILED: at least one libmesh run failed"
  exit 1
fi
exit 0
