// The meshing write barrier, and the application's SIGSEGV as it would be without it.
//
// While a span is being meshed its virtual pages are read-only. A thread that writes to one takes
// a SIGSEGV; our handler sees that the address is in the arena, waits (spinning with
// sched_yield, no locks: async-signal-safe) until the mesh is over and returns, and the write
// is retried on the new read-write mapping. Kernel writes into a read-only page fail with EFAULT
// instead of faulting: the interposed read()/recv()/... retry after waitWhileMeshing().
//
// Every other SIGSEGV must behave exactly as it would without libmesh (docs/host-contract.md,
// "Signals"). Once our handler is installed it stays the kernel's disposition, and the
// application's own (set with sigaction() and every other libc call that sets one, see
// entry/signals.cc) is kept here as the "chained" disposition, in the form in which the kernel
// would have stored it. Our handler is installed with the chained handler's SA_ONSTACK and
// SA_RESTART, so it runs on the stack and restarts the calls the application's would. A SIGSEGV
// that is no barrier fault is then delivered as the kernel would deliver it:
//   - to a handler, with its sa_mask (and SIGSEGV itself unless SA_NODEFER) blocked while it
//     runs, after resetting the disposition to SIG_DFL if it has SA_RESETHAND;
//   - with SIG_IGN, a sent SIGSEGV is ignored, while a fault kills (the kernel forces the
//     default action on a synchronous fault it cannot deliver);
//   - with SIG_DFL, the process dies of it.
//
// No thread may ever really block SIGSEGV: a barrier fault on a blocked SIGSEGV kills the
// process. So the interposed mask functions keep SIGSEGV out of the kernel's mask and record a
// per-thread "virtual" block instead, which they report as if it were real. While it is set, a
// sent SIGSEGV waits until the thread unblocks it, and a real fault kills, as the kernel does.
#pragma once

#include <signal.h>

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "common/pause_histogram.h"

namespace mesh::barrier {

// Installs the handler (once) for the arena at arenaBase. False when sigaction fails: the
// caller must not mesh then.
bool install(const void* arenaBase, size_t arenaBytes);
bool installed();

// A mesh pass is running between begin() and end() (nesting is not allowed).
void begin();
void end();
bool meshing();
uint64_t epoch();  // odd while meshing; changes on every begin/end
// Called where a write met a span being meshed: the barrier's fault handler and the interposed
// read()-family calls that failed with EFAULT. Counts the call (retries()), then returns once no
// mesh runs, timing the wait if one was running (waits()); the caller then retries its write.
void waitWhileMeshing();
// How often waitWhileMeshing was called since start (the barrier_waits statistic).
uint64_t retries();
// The times threads spent waiting in waitWhileMeshing for a mesh to end (part of mesh_waits).
const PauseHistogram& waits();
bool inArena(const void* p, size_t len);
// Writes that waited in the kernel on a userfaultfd-protected span (meshing/write_protect.h), for
// at most ns each (the time the span was protected): part of waits(), up to 64 per mesh.
void noteKernelWaits(uint64_t count, uint64_t ns);

// sigaction(SIGSEGV, act, old) as the application sees it: the kernel's before our handler is
// installed, the chained disposition afterwards. Returns what sigaction returns.
int segvAction(const struct sigaction* act, struct sigaction* old);

// The calling thread's virtual SIGSEGV block. Blocking installs our handler first (the block
// cannot be emulated without it); unblocking delivers a SIGSEGV that was sent meanwhile.
bool segvBlocked();
void setSegvBlocked(bool blocked);
// A SIGSEGV sent to this thread while it blocked SIGSEGV is waiting for delivery.
bool segvPending();
// Takes that waiting SIGSEGV and its siginfo (sigwait and friends accept it); false when there
// is none. info may be nullptr.
bool takeSegvPending(siginfo_t* info);

// fork child: a parent thread may have been changing the chained disposition.
void afterForkInChild();

}  // namespace mesh::barrier
