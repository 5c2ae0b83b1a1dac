// The meshing write barrier.
//
// While a span is being meshed its virtual pages are read-only. A thread that writes to one takes
// a SIGSEGV; our handler sees that the address is in the arena, waits (spinning with
// sched_yield, no locks: async-signal-safe) until the mesh is over and returns, and the write
// is retried on the new read-write mapping. Faults outside the arena, and faults inside it that
// persist when no mesh is running, go to the application's handler (or the default action).
//
// The application's own SIGSEGV handler, installed before or after us with sigaction() or
// signal(), is kept as the "chained" handler (entry/interpose.cc routes those calls here).
// Kernel writes into a read-only page fail with EFAULT instead of faulting: the interposed
// read()/recv()/... retry after waitWhileMeshing().
#pragma once

#include <signal.h>

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace mesh::barrier {

// Installs the handler (once). False when sigaction fails: the caller must not mesh then.
bool install(const void* arenaBase, size_t arenaBytes);
bool installed();

// A mesh pass is running between begin() and end() (nesting is not allowed).
void begin();
void end();
bool meshing();
uint64_t epoch();  // odd while meshing; changes on every begin/end
void waitWhileMeshing();
bool inArena(const void* p, size_t len);

// The application's SIGSEGV disposition, used once our handler is installed.
void setChained(const struct sigaction* act);
void getChained(struct sigaction* out);

}  // namespace mesh::barrier
