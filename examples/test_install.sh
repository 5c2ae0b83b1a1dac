#!/usr/bin/env bash
# Installs a libmesh build into a temporary prefix and builds the example consumers against it:
#   1. cmake --install BUILD --prefix TMP, then checks the installed files and the soname
#   2. examples/cmake-consumer (C++) and examples/cmake-c-consumer (C only) with
#      find_package(mesh) (CMAKE_PREFIX_PATH=TMP): shared and static variants, built and run
#   3. examples/pkgconfig-consumer with pkg-config (PKG_CONFIG_PATH=TMP/LIBDIR/pkgconfig), run
#      with LD_LIBRARY_PATH=TMP/LIBDIR
# Each consumer must print its OK line; the shared ones must take malloc from TMP's libmesh.
# Registered in ctest by examples/CMakeLists.txt (label 'install').
set -euo pipefail

usage() {
  cat <<USAGE
usage: examples/test_install.sh --build-dir DIR [--libdir DIR] [--includedir DIR] [--keep] [--help]
  Installs the libmesh build in DIR to a temporary prefix and builds and runs the CMake and
  pkg-config example consumers against the installed files.
  --build-dir DIR   a configured and built libmesh build directory (required)
  --libdir DIR      CMAKE_INSTALL_LIBDIR of that build (default: read from its CMakeCache.txt)
  --includedir DIR  CMAKE_INSTALL_INCLUDEDIR of that build (default: from CMakeCache.txt)
  --keep            keep the temporary directory and print where it is
  --help            show this text
  Exit status: 0 all passed, 1 a check failed, 2 bad usage, 77 passed except that pkg-config
  is not installed (the pkg-config consumer was skipped).
USAGE
}

build=""
libdir=""
includedir=""
keep=0
need_value() {
  if [ "$2" -lt 2 ]; then
    echo "test_install.sh: $1 needs a value" >&2
    usage >&2
    exit 2
  fi
}
while [ $# -gt 0 ]; do
  case "$1" in
    --build-dir) need_value "$1" $#; build=$2; shift ;;
    --libdir) need_value "$1" $#; libdir=$2; shift ;;
    --includedir) need_value "$1" $#; includedir=$2; shift ;;
    --keep) keep=1 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "test_install.sh: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
  esac
  shift
done
if [ -z "$build" ]; then
  echo "test_install.sh: --build-dir is required" >&2
  usage >&2
  exit 2
fi

here=$(cd "$(dirname "$0")" && pwd)
build=$(cd "$build" && pwd)
cache="$build/CMakeCache.txt"
[ -f "$cache" ] || { echo "test_install.sh: $build has no CMakeCache.txt" >&2; exit 2; }
cache_value() { sed -n "s/^$1:[A-Z]*=//p" "$cache" | head -n 1; }
[ -n "$libdir" ] || libdir=$(cache_value CMAKE_INSTALL_LIBDIR)
[ -n "$includedir" ] || includedir=$(cache_value CMAKE_INSTALL_INCLUDEDIR)
libdir=${libdir:-lib}
includedir=${includedir:-include}
cxx=$(cache_value CMAKE_CXX_COMPILER)
cc=$(cache_value CMAKE_C_COMPILER)
version=$(cache_value CMAKE_PROJECT_VERSION)
[ -n "$version" ] || version=$(sed -n 's/^mesh_VERSION:[A-Z]*=//p' "$cache" | head -n 1)

tmp=$(mktemp -d "${TMPDIR:-/tmp}/mesh-install-test.XXXXXX")
if [ "$keep" = 1 ]; then
  trap 'echo "test_install.sh: kept $tmp"' EXIT
else
  trap 'rm -rf "$tmp"' EXIT
fi
prefix="$tmp/prefix"
# A relative --libdir/--includedir lives under the prefix; an absolute one is used as it is.
case "$libdir" in /*) lib="$libdir" ;; *) lib="$prefix/$libdir" ;; esac
case "$includedir" in /*) inc="$includedir" ;; *) inc="$prefix/$includedir" ;; esac

failures=0
fail() {
  echo "FAIL: $*"
  failures=$((failures + 1))
}
ok() { echo "ok: $*"; }
step() { echo "== $*"; }

# Runs a command with its output in a log; on failure shows the log's tail and stops.
run_logged() {
  local log=$1 rc=0
  shift
  "$@" >"$log" 2>&1 || rc=$?
  if [ "$rc" != 0 ]; then
    echo "FAIL: $* (exit $rc); last lines of $log:"
    tail -n 40 "$log" | sed 's/^/  | /'
    exit 1
  fi
}

# --- 1. install ----------------------------------------------------------------------------------
step "cmake --install $build --prefix $prefix"
run_logged "$tmp/install.log" cmake --install "$build" --prefix "$prefix"
sed 's/^/  /' "$tmp/install.log"
if ! grep -q "libmesh" "$tmp/install.log"; then
  echo "FAIL: nothing of libmesh was installed: is cmake/MeshInstall.cmake included by the top-level CMakeLists.txt?"
  exit 1
fi

for f in "$lib/libmesh.so" "$lib/libmesh.so.0" "$lib/libmesh.a" \
  "$inc/mesh/mesh.h" "$inc/mesh/stats_fields.def" "$inc/mesh/options.def" \
  "$lib/cmake/mesh/meshConfig.cmake" "$lib/cmake/mesh/meshConfigVersion.cmake" \
  "$lib/cmake/mesh/meshTargets.cmake" "$lib/pkgconfig/mesh.pc"; do
  if [ -e "$f" ]; then ok "installed ${f#"$tmp"/}"; else fail "missing ${f#"$tmp"/}"; fi
done
for f in "$here"/../mesh/include/mesh/*; do
  [ -e "$inc/mesh/$(basename "$f")" ] || fail "public header $(basename "$f") was not installed"
done
if [ -e "$lib/libmesh.so.0" ]; then
  soname=$(readelf -d "$lib/libmesh.so.0" 2>/dev/null | sed -n 's/.*Library soname: \[\(.*\)\].*/\1/p')
  if [ "$soname" = "libmesh.so.0" ]; then ok "soname $soname"; else fail "soname is '$soname', expected libmesh.so.0"; fi
  if [ -n "$version" ] && [ ! -e "$lib/libmesh.so.$version" ]; then fail "missing libmesh.so.$version"; fi
fi
if grep -rq -- "$build" "$lib/cmake/mesh" "$lib/pkgconfig" 2>/dev/null; then
  fail "the installed package files refer to the build directory $build"
fi
[ "$failures" = 0 ] || { echo "test_install.sh: $failures failure(s) in the installed tree"; exit 1; }

# check_consumer LABEL OK_PREFIX SHARED COMMAND...: runs a consumer and checks that it prints
# "OK_PREFIX: OK"; with SHARED=1 also that its malloc comes from the installed libmesh.so.0.
check_consumer() {
  local label=$1 prefix_ok=$2 shared=$3 rc=0
  shift 3
  local out="$tmp/$label.out"
  "$@" >"$out" 2>&1 || rc=$?
  sed 's/^/  | /' "$out"
  if [ "$rc" != 0 ]; then
    fail "$label exited with status $rc"
    return
  fi
  grep -q "^$prefix_ok: OK" "$out" || { fail "$label did not print '$prefix_ok: OK'"; return; }
  if [ "$shared" = 1 ]; then
    local origin
    origin=$(sed -n 's/^malloc from: //p' "$out")
    if [ "$(readlink -f "$origin")" != "$(readlink -f "$lib/libmesh.so.0")" ]; then
      fail "$label takes malloc from '$origin', not from $lib/libmesh.so.0"
      return
    fi
  fi
  ok "$label"
}

# --- 2. CMake consumer ---------------------------------------------------------------------------
step "examples/cmake-consumer with find_package(mesh), CMAKE_PREFIX_PATH=$prefix"
# Arguments after the first four (-S DIR -B DIR) are shared with the C consumer below.
cmake_args=(-S "$here/cmake-consumer" -B "$tmp/cmake-consumer" -DCMAKE_BUILD_TYPE=Release
  "-DCMAKE_PREFIX_PATH=$prefix" -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF
  -DCMAKE_FIND_USE_SYSTEM_PACKAGE_REGISTRY=OFF)
# find_package searches PREFIX/lib and PREFIX/lib/<multiarch> (and lib64 off Debian); for any
# other libdir a user points mesh_DIR at the package, and so do we.
case "$libdir" in
  lib | lib/*) ;;
  *) cmake_args+=("-Dmesh_DIR=$lib/cmake/mesh"); echo "(libdir $libdir: setting mesh_DIR)" ;;
esac
cxx_args=()
[ -n "$cxx" ] && cxx_args=("-DCMAKE_CXX_COMPILER=$cxx")
run_logged "$tmp/cmake-consumer.log" cmake "${cmake_args[@]}" "${cxx_args[@]}"
found=$(sed -n 's/^mesh_DIR:[A-Z]*=//p' "$tmp/cmake-consumer/CMakeCache.txt")
if [ "$(readlink -f "$found")" = "$(readlink -f "$lib/cmake/mesh")" ]; then
  ok "find_package(mesh) found ${found#"$tmp"/}"
else
  fail "find_package(mesh) found '$found', not $lib/cmake/mesh"
fi
run_logged "$tmp/cmake-consumer-build.log" cmake --build "$tmp/cmake-consumer" -j 2
check_consumer mesh-consumer mesh-consumer 1 "$tmp/cmake-consumer/mesh-consumer"
check_consumer mesh-consumer-static mesh-consumer 0 "$tmp/cmake-consumer/mesh-consumer-static"

step "examples/cmake-c-consumer: a C-only project with find_package(mesh)"
c_args=(-S "$here/cmake-c-consumer" -B "$tmp/cmake-c-consumer" "${cmake_args[@]:4}")
[ -n "$cc" ] && c_args+=("-DCMAKE_C_COMPILER=$cc")
run_logged "$tmp/cmake-c-consumer.log" cmake "${c_args[@]}"
run_logged "$tmp/cmake-c-consumer-build.log" cmake --build "$tmp/cmake-c-consumer" -j 2
check_consumer mesh-c-consumer mesh-pc-consumer 1 "$tmp/cmake-c-consumer/mesh-c-consumer"
check_consumer mesh-c-consumer-static mesh-pc-consumer 0 "$tmp/cmake-c-consumer/mesh-c-consumer-static"

# --- 3. pkg-config consumer ----------------------------------------------------------------------
skipped=0
if command -v pkg-config >/dev/null 2>&1; then
  step "examples/pkgconfig-consumer with pkg-config, PKG_CONFIG_PATH=$lib/pkgconfig"
  export PKG_CONFIG_PATH="$lib/pkgconfig"
  pc_version=$(pkg-config --modversion mesh 2>&1) || true
  if [ -n "$version" ] && [ "$pc_version" != "$version" ]; then
    fail "pkg-config --modversion mesh says '$pc_version', expected $version"
  fi
  pc_prefix=$(pkg-config --variable=prefix mesh)
  [ "$pc_prefix" = "$prefix" ] || fail "mesh.pc has prefix '$pc_prefix', expected $prefix"
  mkdir -p "$tmp/pc-consumer"
  run_logged "$tmp/pc-consumer.log" make -C "$here/pkgconfig-consumer" "BUILD=$tmp/pc-consumer"
  check_consumer mesh-pc-consumer mesh-pc-consumer 1 env "LD_LIBRARY_PATH=$lib" "$tmp/pc-consumer/mesh-pc-consumer"
else
  echo "SKIP: pkg-config is not installed; the pkg-config consumer was not built"
  skipped=1
fi

if [ "$failures" != 0 ]; then
  echo "test_install.sh: $failures failure(s)"
  exit 1
fi
if [ "$skipped" = 1 ]; then
  echo "test_install.sh: passed, pkg-config part skipped"
  exit 77
fi
echo "test_install.sh: all passed"
