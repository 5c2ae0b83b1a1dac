// Write protection for meshing through a userfaultfd, so that kernel writes wait too.
//
// A mesh must stop every write to the spans it moves while it copies them. mprotect() does that
// for the program's own stores (they fault, and the write barrier makes them wait), but a system
// call that writes into such a span (read(), fstat(), getrandom(), epoll_wait(), io_uring...)
// fails with EFAULT instead. A userfaultfd registered for write protection (UFFDIO_WRITEPROTECT)
// makes both kinds of write wait in the kernel until the range is released, with no signal.
//
// A userfaultfd is a descriptor, and the heap keeps none in the program's table (host contract,
// section 1): a program may close every descriptor or reuse the numbers. So the descriptor lives
// on a service thread that has a descriptor table of its own, made empty when the thread starts
// (close_range with CLOSE_RANGE_UNSHARE, which takes no reference to any of the program's
// files). Only that thread can use it, so the meshing that wants it runs there: run() hands the
// thread a job (a round of paced meshing, a mesh_compact) and sleeps until it is done. Running
// the whole job there, rather than asking the thread for each protection, also keeps the
// meshes cheap: a remap or a protection made while a second thread of the program runs on
// another CPU must interrupt that CPU to flush its TLB (measured here: 330 instead of 120 us a
// mesh with a request per protection), while the requester sleeps.
//
// Unavailable (meshes then use mprotect and the barrier, as before): no privilege to handle
// kernel faults (an unprivileged process with vm.unprivileged_userfaultfd=0, the Debian
// default), a kernel before 5.19 (write protection of shmem), a seccomp filter, no thread, or
// MESH_UFFD=0. Before 6.4 untouched anonymous pages cannot be protected: they are populated
// first. Meshes made on other threads (the free path with MESH_BACKGROUND_THREAD=0, fork's
// copy of the meshed heap) use mprotect too.
#pragma once

#include <cstddef>
#include <cstdint>

namespace mesh::wp {

struct Range {
  void* addr;
  size_t len;
};
inline constexpr int kMaxRanges = 16;

// Starts the service in this process unless it runs, is starting, or failed for good. Call with
// no allocator lock held: may allocate (pthread_create). alive() is asked about once a second
// while the thread idles; false ends the thread (the program's own threads are gone, and
// glibc ends a process when its last thread exits).
void start(bool (*alive)());
// MESH_UFFD: when off, run() refuses and meshes use mprotect (the thread, if any, stays).
void setEnabled(bool on);
// The service runs in this process and is enabled.
bool active();
// Runs job(arg) on the service thread and returns once it is done; false (job not run) when the
// service is not active. Call with no allocator lock held: the job takes them, and a second
// caller waits for the first job to end.
bool run(void (*job)(void*), void* arg);
// Whether some thread waits in run() (for the service, or for its job).
bool waiting();
// True on the service thread while it runs a job: protect() works there.
bool onService();
// Write-protects the ranges (at most kMaxRanges): from now on every write to them, by a thread
// or by the kernel, waits until finish(). Only on the service thread; false when nothing could
// be protected (the caller falls back to mprotect), true when all of them are.
bool protect(const Range* ranges, int count);
// Ends a protection: ranges still mapped as they were become writable again, ranges that were
// remapped meanwhile (remapped[i]) are simply released, and every write waiting on them is
// woken (and retried on whatever is mapped there now). Returns how many writes had waited.
uint64_t finish(const Range* ranges, const bool* remapped, int count);
// Writes that waited on a protected range since start (part of the barrier_waits statistic).
uint64_t waits();
// CPU time the service thread has used for jobs so far, updated as each job ends (0 before the
// first; a fork child starts again from 0).
uint64_t cpuNs();
// Why the service does not run, for the report: nullptr when it runs or was never started.
const char* unavailableReason();
// fork child: the thread did not come along (its userfaultfd is the parent's).
void afterForkInChild();

}  // namespace mesh::wp
