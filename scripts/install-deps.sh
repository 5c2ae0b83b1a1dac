#!/usr/bin/env bash
# Installs (idempotently) every Debian package the build, the tests and the perf runs need.
# Quiet when everything is present; a clear message and exit 1 when something is missing and
# cannot be installed (not root, or apt failed).
set -euo pipefail

usage() {
  cat <<USAGE
usage: scripts/install-deps.sh [--check] [--help]
  Installs the Debian packages libmesh needs to build, test and benchmark.
  --check   only report missing packages (exit 1 if any are missing)
  --help    show this text
USAGE
}

check_only=0
for arg in "$@"; do
  case "$arg" in
    --check) check_only=1 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "install-deps.sh: unknown argument '$arg'" >&2; usage >&2; exit 2 ;;
  esac
done

PACKAGES=(
  cmake make g++ clang libclang-rt-14-dev pkg-config
  libgtest-dev libgmock-dev libbenchmark-dev librapidcheck-dev
  python3 python3-pytest python3-matplotlib redis-server libpython3.11-testsuite sqlite3
  libjemalloc2 libgoogle-perftools4 libmimalloc2.0
  valgrind time procps strace
  git gzip bzip2 xz-utils
)

missing=()
for p in "${PACKAGES[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
  [ "$status" = "installed" ] || missing+=("$p")
done

[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$check_only" = 1 ]; then
  echo "install-deps.sh: missing packages: ${missing[*]}" >&2
  exit 1
fi
if [ "$(id -u)" != 0 ]; then
  echo "install-deps.sh: missing packages: ${missing[*]}" >&2
  echo "install-deps.sh: run as root (or: sudo apt-get install ${missing[*]})" >&2
  exit 1
fi
echo "install-deps.sh: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
if ! apt-get install -y -qq "${missing[@]}" >/tmp/mesh-install-deps.log 2>&1; then
  apt-get update -qq >>/tmp/mesh-install-deps.log 2>&1 || true
  if ! apt-get install -y -qq "${missing[@]}" >>/tmp/mesh-install-deps.log 2>&1; then
    echo "install-deps.sh: apt-get install failed; see /tmp/mesh-install-deps.log" >&2
    tail -n 20 /tmp/mesh-install-deps.log >&2
    exit 1
  fi
fi
echo "install-deps.sh: done"
