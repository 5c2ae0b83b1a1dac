#!/usr/bin/env bash
# Sanitizer builds of the allocator's own tests (docs/behaviour.md D18), see ci/README.md.
#   ci/sanitizers.sh [address|thread|undefined|all]     (default: all)
# For each sanitizer: configure build-asan / build-tsan / build-ubsan with MESH_SANITIZER=<name>
# and the sanitizer in CMAKE_CXX_FLAGS (so mesh_core itself is instrumented, not only the test
# code), build only the tests that run on fresh heap instances (mesh-unit-tests,
# mesh-property-tests, the fuzz corpus replay), run `ctest -L "unit|property|fuzz"` minus the
# tests that cannot work under that sanitizer, and print one line per sanitizer plus a summary.
# Exit status: 0 all passed, 1 something failed, 2 usage error.
set -uo pipefail
cd "$(dirname "$0")/.."

usage() {
  cat <<USAGE
usage: ci/sanitizers.sh [--help] [address|thread|undefined|all]
  Builds mesh-unit-tests and mesh-property-tests (plus the fuzz replay) with each sanitizer
  in build-asan, build-tsan, build-ubsan and runs ctest -L "unit|property|fuzz" there.
  Environment: MESH_SANITIZER_JOBS (build and ctest parallelism, default 2),
  MESH_PROPERTY_CASES (overrides the per-sanitizer number of property cases).
USAGE
}

which=all
case $# in
  0) ;;
  1)
    case "$1" in
      -h|--help) usage; exit 0 ;;
      address|thread|undefined|all) which=$1 ;;
      *) echo "sanitizers.sh: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
    esac ;;
  *) echo "sanitizers.sh: too many arguments" >&2; usage >&2; exit 2 ;;
esac
[ "$which" = all ] && sanitizers=(address thread undefined) || sanitizers=("$which")
jobs=${MESH_SANITIZER_JOBS:-2}

for tool in cmake g++ ctest; do
  command -v "$tool" >/dev/null || { echo "sanitizers.sh: $tool not found (scripts/install-deps.sh)" >&2; exit 1; }
done

# Tests that need the process-wide libmesh (api.*: the malloc API suite; they are not built
# here, and preloading an allocator under a sanitizer that replaces malloc means nothing).
common_exclude='^api\.'

results=()
failed=0
passed=0
for san in "${sanitizers[@]}"; do
  case $san in
    address)
      dir=build-asan
      flags="-fsanitize=address -fno-omit-frame-pointer"
      cases=${MESH_PROPERTY_CASES:-100}
      exclude=$common_exclude
      export ASAN_OPTIONS="abort_on_error=0:detect_leaks=1:strict_string_checks=1"
      ;;
    thread)
      dir=build-tsan
      # -Wno-tsan: gcc refuses std::atomic_thread_fence under TSan (-Wtsan, an error with -Werror);
      # TSan does not model fences, see ci/README.md.
      flags="-fsanitize=thread -fno-omit-frame-pointer -Wno-tsan"
      cases=${MESH_PROPERTY_CASES:-40}
      # Death tests fork a process that has threads and let the child run on: ThreadSanitizer
      # does not support that (the child can hang in its runtime or report bogus races).
      # ForkChildSeesNoParentWriteMadeAfterFork forks with a writer thread running too, and its
      # writer is held off by page protection, which TSan does not model (it reports the copy
      # as a race). CommitsAsItGrows needs free address space above the arena; TSan's fixed
      # layout keeps the hinted range for its shadow, so the kernel places the arena where
      # other mappings sit right above it.
      exclude="$common_exclude|Death|ForkChildSeesNoParentWriteMadeAfterFork|CommitsAsItGrowsAndGrowsInPlace"
      export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1"
      ;;
    undefined)
      dir=build-ubsan
      # Everything but vptr: the vptr check needs the type information of polymorphic classes,
      # and the allocator is built without RTTI (GlobalHeap implements the SpanLists interface).
      flags="-fsanitize=undefined -fno-sanitize=vptr -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
      cases=${MESH_PROPERTY_CASES:-100}
      exclude=$common_exclude
      export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
      ;;
  esac
  start=$(date +%s)
  log=$dir/sanitizers.log
  mkdir -p "$dir"
  echo "sanitizers.sh: $san: configuring $dir"
  # -O1 -g1: a third of the compile time of -O2 -g, still optimised enough for real races and
  # line numbers in every report.
  if ! cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG="-O1 -g1" \
       -DMESH_SANITIZER="$san" -DCMAKE_CXX_FLAGS="$flags" -DMESH_BUILD_PERF=OFF \
       -DMESH_BUILD_FUZZ=OFF >"$log" 2>&1; then
    tail -n 30 "$log" >&2
    results+=("$san: FAIL (configure; see $log)")
    failed=$((failed + 1))
    continue
  fi
  echo "sanitizers.sh: $san: building mesh-unit-tests mesh-property-tests mesh-fuzz-replay"
  if ! cmake --build "$dir" -j"$jobs" --target mesh-unit-tests mesh-property-tests \
       mesh-fuzz-replay mesh-fuzz-gen-corpus >>"$log" 2>&1; then
    grep -E "error|Error" "$log" | head -n 30 >&2
    results+=("$san: FAIL (build; see $log)")
    failed=$((failed + 1))
    continue
  fi
  echo "sanitizers.sh: $san: ctest -L 'unit|property|fuzz' -E '$exclude' ($cases property cases)"
  ctest_out=$dir/sanitizers-ctest.log
  (cd "$dir" && MESH_PROPERTY_CASES=$cases ctest -L "unit|property|fuzz" -E "$exclude" \
     -j"$jobs" --timeout 600 --output-on-failure) >"$ctest_out" 2>&1
  status=$?
  summary=$(grep -E "tests passed|tests failed" "$ctest_out" | tail -n 1)
  elapsed=$(( $(date +%s) - start ))
  if [ "$status" = 0 ]; then
    results+=("$san: PASS (${summary:-no summary}; ${elapsed}s)")
    passed=$((passed + 1))
  else
    # The failing tests with the sanitizer's report (ctest printed their output).
    sed -n '/The following tests FAILED/,$p' "$ctest_out" >&2
    grep -E -m 20 "WARNING: ThreadSanitizer|ERROR: AddressSanitizer|runtime error:|SUMMARY:" \
      "$ctest_out" >&2
    results+=("$san: FAIL (${summary:-ctest failed}; ${elapsed}s; see $ctest_out)")
    failed=$((failed + 1))
  fi
done

for r in "${results[@]}"; do echo "sanitizers.sh: $r"; done
echo "sanitizers: $passed passed, $failed failed"
[ "$failed" = 0 ]
