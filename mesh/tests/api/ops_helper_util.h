// Helpers shared by mesh_ops_helper's modes (ops_helper.cc, ops_helper_quiet.cc), and Say by
// mesh_api_helper too: output without allocating, sleeping, /proc readings, libmesh's statistics,
// and starting the background thread.
#pragma once

#include <cstddef>

#include "mesh/mesh.h"

namespace ops_helper {

// printf to stdout with write(2).
void Say(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
void SleepMs(long ms);
// Reads a small /proc file into buf without allocating.
bool ReadProc(const char* path, char* buf, size_t len);
// Threads of the process named name (/proc/self/task/*/comm).
long ThreadsNamed(const char* name);
// The write-protection service's threads (mesh-wp).
long WpThreads();
// The process's threads, apart from the write-protection service.
long Threads();
bool EnvOn(const char* name);
mesh_stats Stats();
// Enough slow frees for the background thread to start (it starts lazily on the free path).
void WarmUp();
// Waits (without allocating) up to ms for the thread count to reach n.
bool WaitForThreads(long n, long ms);

// The modes of ops_helper_quiet.cc (caches of quiet threads, MESH_QUIET_THREAD_MS).
int QuietThread(long ms);
int QuietRace(long ms);
// The mode of ops_helper_sparse.cc (sparse spans, MESH_SPARSE_PCT).
int SparseChurn(long rounds, long threads);

}  // namespace ops_helper
