#!/bin/sh
# Command-line checks of the perf workload programs given as arguments:
#   --help        exits 0 with "usage:" on stdout
#   --no-such     exits 2 with "usage:" on stderr
#   a bad value   exits 2 (--seed=abc), a positional argument exits 2
# usage: check-workload-cli.sh PROGRAM...
set -u
usage() { echo "usage: check-workload-cli.sh PROGRAM..."; }
case "${1-}" in
  -h | --help) usage; exit 0 ;;
  -*) echo "check-workload-cli.sh: unknown option '$1'" >&2; usage >&2; exit 2 ;;
  "") usage >&2; exit 2 ;;
esac
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
bad=0

# check WHAT WANT_STATUS USAGE_STREAM PROGRAM ARGS...
check() {
  what=$1 want=$2 stream=$3
  shift 3
  "$@" >"$tmp/out" 2>"$tmp/err"
  got=$?
  if [ "$got" -ne "$want" ]; then
    echo "FAIL: $* ($what): exit $got, expected $want"
    bad=$((bad + 1))
  elif [ -n "$stream" ] && ! grep -q "^usage:" "$tmp/$stream"; then
    echo "FAIL: $* ($what): no usage on std$stream"
    bad=$((bad + 1))
  else
    echo "ok: $(basename "$1") $what"
  fi
}

for prog in "$@"; do
  check "--help" 0 out "$prog" --help
  check "unknown flag" 2 err "$prog" --no-such-flag
  check "bad value" 2 err "$prog" --seed=abc
  check "missing value" 2 err "$prog" --seed
  check "out of range" 2 err "$prog" --min-size 0
  check "positional" 2 err "$prog" stray
done
[ "$bad" -eq 0 ] || { echo "check-workload-cli: $bad failure(s)"; exit 1; }
echo "check-workload-cli: all passed"
