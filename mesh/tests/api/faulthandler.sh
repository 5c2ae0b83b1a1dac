#!/usr/bin/env bash
# CPython's faulthandler after a mesh (docs/host-contract.md, section 4 "Signals"): a stack
# overflow must reach its handler, which runs on an alternate signal stack (SA_ONSTACK) and
# prints "Fatal Python error: Segmentation fault" before the process dies of SIGSEGV, exactly
# as without LD_PRELOAD. Exit 77 (ctest SKIP_RETURN_CODE) without python3.
#   faulthandler.sh /path/to/libmesh.so
set -u

lib=${1:-}
if [ -z "$lib" ] || [ ! -f "$lib" ]; then
  echo "usage: faulthandler.sh LIBRARY.so (got '${lib}')" >&2
  exit 2
fi
lib=$(readlink -f "$lib")
python=$(command -v python3) || { echo "python3 not found: skipped"; exit 77; }

# Fragments the C heap through ctypes and compacts it (under libmesh), then overflows the C
# stack: the recursion goes through a C function (sorted's key), so every level costs C stack.
script='
import ctypes, sys
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
blocks = [libc.malloc(48) for _ in range(100000)]
for i, p in enumerate(blocks):
    if i % 10:
        libc.free(p)
meshes = libc.mesh_compact() if hasattr(libc, "mesh_compact") else 0
print("meshed" if meshes > 0 else "not meshed", flush=True)
sys.setrecursionlimit(10**6)
f = lambda n: sorted([0], key=lambda _: f(n + 1))
f(0)
'

failures=0
for preload in "" "$lib"; do
  out=$(LD_PRELOAD=$preload timeout 120 "$python" -X faulthandler -c "$script" 2>&1)
  rc=$?
  name=${preload:+with LD_PRELOAD}
  name=${name:-without LD_PRELOAD}
  if [ -n "$preload" ] && ! grep -q '^meshed' <<<"$out"; then
    echo "FAIL ($name): nothing was meshed before the overflow"
    failures=$((failures + 1))
  fi
  if [ "$rc" != 139 ] || ! grep -q 'Fatal Python error: Segmentation fault' <<<"$out"; then
    echo "FAIL ($name): exit $rc, faulthandler's report missing:"
    head -5 <<<"$out"
    failures=$((failures + 1))
  else
    echo "ok ($name): exit $rc, faulthandler reported the overflow"
  fi
done
[ "$failures" = 0 ]
