// Branch hints and path markers: the fast path is inline and short, the slow path noinline+cold.
#pragma once

#define MESH_LIKELY(x) __builtin_expect(!!(x), 1)
#define MESH_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define MESH_FAST_PATH inline __attribute__((always_inline))
#define MESH_SLOW_PATH __attribute__((noinline, cold))
// Out of line but not cold: a second-tier path some workloads run on every call (kept large
// blocks), compiled for speed with its helpers inlined.
#define MESH_WARM_PATH __attribute__((noinline))
#define MESH_EXPORT __attribute__((visibility("default")))
