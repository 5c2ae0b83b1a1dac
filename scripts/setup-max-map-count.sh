#!/usr/bin/env bash
# Shows and raises vm.max_map_count. libmesh maps memory in many small regions (every mesh adds
# mappings), and the Linux default of 65530 can run out on large heaps.
#
# Environment overrides (for tests; never needed in normal use):
#   MESH_PROC_SYS_DIR  directory used instead of /proc/sys (reads vm/max_map_count from it)
#   MESH_SYSCTL        command run instead of sysctl
#   MESH_SYSCTL_D      directory used instead of /etc/sysctl.d
#   MESH_FAKE_UID      user id used instead of $(id -u)
set -euo pipefail

readonly DEFAULT_VALUE=1000000
readonly CONF_NAME=90-libmesh-max-map-count.conf

usage() {
  cat <<USAGE
usage: scripts/setup-max-map-count.sh [VALUE] [--persist] [--check] [--help]
  Shows the current vm.max_map_count and raises it to VALUE (default $DEFAULT_VALUE) with
  'sysctl -w'. A value already at or above VALUE is left alone. Needs root, except --check.
  --persist  also write /etc/sysctl.d/$CONF_NAME so the value survives a reboot
  --check    only report: exit 0 if the current value is >= VALUE, 1 otherwise
  --help     show this text
USAGE
}

die() {
  echo "setup-max-map-count.sh: error: $*" >&2
  exit 1
}

value=""
value_given=0
persist=0
check=0
for arg in "$@"; do
  case "$arg" in
    --persist) persist=1 ;;
    --check) check=1 ;;
    -h | --help)
      usage
      exit 0
      ;;
    -[0-9]*) die "VALUE must be a positive integer, got '$arg'" ;;
    -*)
      echo "setup-max-map-count.sh: unknown option '$arg'" >&2
      usage >&2
      exit 2
      ;;
    *)
      if [ "$value_given" = 1 ]; then
        echo "setup-max-map-count.sh: more than one VALUE ('$value', '$arg')" >&2
        usage >&2
        exit 2
      fi
      value=$arg
      value_given=1
      ;;
  esac
done

if [ "$value_given" = 0 ]; then
  value=$DEFAULT_VALUE
fi
# A positive decimal integer that fits the kernel's int.
if ! [[ "$value" =~ ^[0-9]+$ ]] || [ "${#value}" -gt 10 ] || [ "$((10#$value))" -le 0 ] ||
  [ "$((10#$value))" -gt 2147483647 ]; then
  die "VALUE must be a positive integer (at most 2147483647), got '$value'"
fi
value=$((10#$value))

proc_file="${MESH_PROC_SYS_DIR:-/proc/sys}/vm/max_map_count"
sysctl_d="${MESH_SYSCTL_D:-/etc/sysctl.d}"
read -r -a sysctl_cmd <<<"${MESH_SYSCTL:-sysctl}"
uid="${MESH_FAKE_UID:-$(id -u)}"

read_current() {
  local v
  v=$(cat "$proc_file" 2>/dev/null) || die "cannot read $proc_file"
  [[ "$v" =~ ^[0-9]+$ ]] || die "unexpected content in $proc_file: '$v'"
  echo "$v"
}

current=$(read_current)
echo "vm.max_map_count: current $current, target $value"

if [ "$check" = 1 ]; then
  if [ "$current" -ge "$value" ]; then
    echo "ok: vm.max_map_count is at least $value"
    exit 0
  fi
  echo "too low: vm.max_map_count is below $value (run scripts/setup-max-map-count.sh as root)"
  exit 1
fi

if [ "$uid" != 0 ]; then
  die "must be run as root to change vm.max_map_count (try: sudo $0 ${*})"
fi

if [ "$current" -ge "$value" ]; then
  echo "vm.max_map_count is already at least $value; not changed"
else
  "${sysctl_cmd[@]}" -w "vm.max_map_count=$value" >/dev/null ||
    die "'${sysctl_cmd[*]} -w vm.max_map_count=$value' failed"
  now=$(read_current)
  [ "$now" -ge "$value" ] || die "sysctl ran but vm.max_map_count is still $now"
  echo "vm.max_map_count set to $now"
fi

if [ "$persist" = 1 ]; then
  mkdir -p "$sysctl_d" || die "cannot create $sysctl_d"
  conf="$sysctl_d/$CONF_NAME"
  {
    echo "# Written by libmesh scripts/setup-max-map-count.sh: libmesh needs many mappings."
    echo "vm.max_map_count = $value"
  } >"$conf" || die "cannot write $conf"
  echo "wrote $conf"
fi
