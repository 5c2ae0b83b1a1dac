#!/usr/bin/env bash
# Checks the command-line convention of every program in stress/, perf/ and scripts/ (--help
# exits 0 with a usage text; an unknown flag exits 2 with the usage on stderr) by running
# scripts/tests/test_help_flags.py against a build directory. Builds nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() {
  cat <<USAGE
usage: scripts/check_help_flags.sh [--build-dir DIR] [--help]
  Runs every built program of DIR/stress and DIR/perf, and every script of scripts/, stress/
  and perf/, with --help and with an unknown flag, and reports those that break the convention.
  Programs that are not built are skipped (listed with -rs in the pytest summary).
  --build-dir DIR  build directory holding the programs (default: build)
  --help           show this text
  Exit status: 0 all conform, 1 some do not, 2 bad usage.
USAGE
}

build=build
while [ $# -gt 0 ]; do
  case "$1" in
    --build-dir)
      [ $# -ge 2 ] || { echo "check_help_flags.sh: --build-dir needs a value" >&2; usage >&2; exit 2; }
      build=$2
      shift
      ;;
    --build-dir=*) build=${1#*=} ;;
    -h | --help) usage; exit 0 ;;
    *) echo "check_help_flags.sh: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
  esac
  shift
done

[ -d "$build" ] || { echo "check_help_flags.sh: no build directory '$build'" >&2; exit 2; }
export MESH_BUILD_DIR
MESH_BUILD_DIR=$(cd "$build" && pwd)
status=0
/usr/bin/python3 -m pytest -q -rs -p no:cacheprovider scripts/tests/test_help_flags.py || status=$?
# pytest: 0 passed, 1 some tests failed; anything else is an error of the run itself.
[ "$status" -le 1 ] || status=1
exit "$status"
