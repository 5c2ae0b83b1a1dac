#!/bin/sh
# Checks the command line behaviour of every stress program given as an argument:
#   --help            exits 0 and prints "usage:" on stdout
#   --no-such-flag    exits 2 and prints "usage:" on stderr
#   a non-numeric positional argument exits 2
#   test-stress and larson without arguments exit 2 (their arguments are required)
# Usage: check-cli.sh PROGRAM...
set -u

if [ $# -eq 0 ]; then
  echo "usage: check-cli.sh PROGRAM..." >&2
  exit 2
fi
case "$1" in
  -h|--help) echo "usage: check-cli.sh PROGRAM..."; exit 0 ;;
  -*) echo "check-cli.sh: unknown option '$1'" >&2; echo "usage: check-cli.sh PROGRAM..." >&2; exit 2 ;;
esac

failures=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# expect NAME WANTED_STATUS STREAM_WITH_USAGE PROGRAM ARGS...
expect() {
  what=$1 want=$2 stream=$3
  shift 3
  "$@" >"$tmp/out" 2>"$tmp/err"
  got=$?
  if [ "$got" != "$want" ]; then
    echo "FAIL: $* ($what): exit $got, expected $want"
    failures=$((failures + 1))
  elif ! grep -q "usage:" "$tmp/$stream"; then
    echo "FAIL: $* ($what): no usage text on std$stream"
    failures=$((failures + 1))
  else
    echo "ok: $(basename "$1") $what"
  fi
}

for prog in "$@"; do
  name=$(basename "$prog")
  expect "--help" 0 out "$prog" --help
  expect "bad flag" 2 err "$prog" --no-such-flag
  expect "bad number" 2 err "$prog" not-a-number
  case "$name" in
    test-stress* | larson*) expect "missing arguments" 2 err "$prog" ;;
  esac
done

if [ "$failures" -ne 0 ]; then
  echo "check-cli: $failures failure(s)"
  exit 1
fi
echo "check-cli: all passed"
