#!/usr/bin/env bash
# The test command: installs dependencies, configures, builds and runs the test suite.
#   scripts/test.sh            default suite (unit, api, stress, property, scripts), < ~15 min
#   scripts/test.sh --soak     also the long-running soaks (label 'soak')
#   CI=true scripts/test.sh    also sanitizers, the quick stress suite and a 60-second fuzz run
set -euo pipefail
cd "$(dirname "$0")/.."

usage() {
  cat <<USAGE
usage: scripts/test.sh [--soak] [--sanitizers] [--stress] [--fuzz SECONDS] [--build-dir DIR] [--help]
  Installs dependencies, builds libmesh (Release) and runs ctest plus the pytest suite.
  --soak           include long soak tests (ctest label 'soak')
  --sanitizers     also build and run the unit and property tests under ASan, TSan and UBSan
                   (ci/sanitizers.sh all, a few minutes); on by default when CI=true
  --stress         also run the quick stress suite under libmesh and the peer allocators
                   (scripts/run-stress.sh --quick, under 5 minutes; as root it raises
                   vm.max_map_count first); on by default when CI=true
  --fuzz SECONDS   also fuzz for SECONDS with the libFuzzer harness (scripts/run-fuzz.sh,
                   clang build in build-fuzz); 60 by default when CI=true, 0 turns it off
  --build-dir DIR  build directory (default: build)
USAGE
}

soak=0
sanitizers=0
stress=0
fuzz=0
[ "${CI:-}" = true ] && sanitizers=1 && stress=1 && fuzz=60
build=build
while [ $# -gt 0 ]; do
  case "$1" in
    --soak) soak=1 ;;
    --sanitizers) sanitizers=1 ;;
    --stress) stress=1 ;;
    --fuzz)
      [ $# -ge 2 ] && [[ "$2" =~ ^[0-9]+$ ]] || { echo "test.sh: --fuzz needs a number of seconds" >&2; usage >&2; exit 2; }
      fuzz=$2; shift ;;
    --build-dir) [ $# -ge 2 ] || { usage >&2; exit 2; }; build=$2; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "test.sh: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
  esac
  shift
done

scripts/install-deps.sh
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" -j"$(nproc)"

exclude="soak"
[ "$soak" = 1 ] && exclude="^$"
(cd "$build" && ctest --output-on-failure -j2 --timeout 900 -LE "$exclude")
if [ "$sanitizers" = 1 ]; then
  ci/sanitizers.sh all
fi
if [ "$stress" = 1 ]; then
  scripts/run-stress.sh --quick --build-dir "$build"
fi
if [ "$fuzz" -gt 0 ]; then
  scripts/run-fuzz.sh "$fuzz"
fi
