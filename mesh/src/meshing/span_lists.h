// SpanLists: what the mesher may do to the per-class lists of detached spans, which the global
// heap owns (GlobalHeap implements this). The mesher sees the lists through these few calls
// only: it takes a class lock for a step, walks the listed partial spans, sends the spans it
// looked at to the back, and has a span relisted or dropped once a mesh changed it.
//
// Every span a call names is detached and of class cls, whose lock the caller holds.
#pragma once

#include <cstdint>

#include "common/lock.h"
#include "miniheap/miniheap.h"

namespace mesh {

class SpanLists {
 public:
  // Partial spans are kept in kBins lists by occupancy, emptiest first, in each of kLanes lanes:
  // a detached span is listed in the lane of the thread it was last attached to, and a thread
  // attaches spans of its own lane first (GlobalHeap::attach). Objects of two threads then rarely
  // share a span, so they rarely share a cache line either.
  static constexpr int kBins = 4;
  static constexpr int kLanes = 8;

  // The lock that guards class cls's lists and every detached span of the class.
  virtual Mutex& classLock(int cls) = 0;
  // Takes class cls's lock for a mesh step: application threads that wait for it meanwhile are
  // timed, and threads that waited for the last step get it first.
  virtual void lockForStep(int cls) MESH_ACQUIRE(classLock(cls)) = 0;
  virtual void unlockAfterStep(int cls) MESH_RELEASE(classLock(cls)) = 0;
  // Folds the class's queued remote frees, so every listed span's bits and bin are current.
  virtual void drainLocked(int cls) MESH_REQUIRES(classLock(cls)) = 0;
  // First span of list bin (0 = emptiest) of a lane; the list goes on through MiniHeap::next.
  virtual MiniHeap* firstListedLocked(int cls, int lane, int bin) MESH_REQUIRES(classLock(cls)) = 0;
  // Sends a listed span to the end of its list (a step's candidates without a partner: the next
  // step looks at others first).
  virtual void moveToTailLocked(int cls, MiniHeap* mh) MESH_REQUIRES(classLock(cls)) = 0;
  // Puts a span whose objects changed where it belongs (a partial list, none, or released).
  virtual void relistLocked(int cls, MiniHeap* mh) MESH_REQUIRES(classLock(cls)) = 0;
  // src was meshed away: its pages and objects now belong to another span. The lists forget it
  // and its miniheap is recycled.
  virtual void dropMeshedLocked(int cls, MiniHeap* src) MESH_REQUIRES(classLock(cls)) = 0;
  // Takes a listed span off the lists for a mesh that runs without the class lock (Mesher::
  // meshClass): until giveBackFromMeshLocked no thread attaches it, and frees of its objects,
  // batched ones too, only set its remote bits, as for a span attached to a thread heap.
  virtual void holdForMeshLocked(int cls, MiniHeap* mh) MESH_REQUIRES(classLock(cls)) = 0;
  // Ends a hold: the span is detached again, its remote frees folded, and it is relisted (or
  // released, if its last objects were freed meanwhile).
  virtual void giveBackFromMeshLocked(int cls, MiniHeap* mh) MESH_REQUIRES(classLock(cls)) = 0;
  // Spans of class cls (takes the lock).
  virtual uint64_t spanCount(int cls) = 0;
  // Free slots in the listed spans of class cls that meshing would consider (lock-free).
  virtual uint64_t meshableFree(int cls) const = 0;

 protected:
  ~SpanLists() = default;
};

}  // namespace mesh
