// fork: the handlers that keep the allocator consistent across it. Before fork every allocator
// lock is taken (the registry, then the global heap's) and the meshed spans are copied for the
// child (global/fork.cc); afterwards the parent lets go, and the child resets the locks and
// gives back the spans of the threads that did not survive.
#include "entry/fork_handlers.h"

#include "common/log.h"
#include "entry/runtime.h"
#include "meshing/write_barrier.h"
#include "platform/os.h"

namespace mesh {

// Whether the fork's prepare handler ran in a signal handler that interrupted a fast path.
static __thread bool t_forkInterrupted __attribute__((tls_model("initial-exec"))) = false;
// Whether prepareFork could give the child private copies of the meshed spans.
static bool g_forkSafe = true;

bool reserveForkFile() {
  Runtime& rt = runtime();
  if (rt.initState.load(std::memory_order_acquire) != 2) return true;
  return rt.heap.reserveForkFile();
}

static void forkPrepare() MESH_NO_THREAD_SAFETY_ANALYSIS {
  Runtime& rt = runtime();
  t_forkInterrupted = enterLockedSection();
  rt.registryLock.lock();
  rt.heap.lockAll();
  // The meshed spans' data is copied for the child now (see global/fork.cc).
  g_forkSafe = rt.heap.prepareFork();
}

static void forkParent() MESH_NO_THREAD_SAFETY_ANALYSIS {
  Runtime& rt = runtime();
  rt.heap.finishForkInParent();
  rt.heap.unlockAll();
  rt.registryLock.unlock();
  leaveLockedSection(t_forkInterrupted);
}

static void forkChild() MESH_NO_THREAD_SAFETY_ANALYSIS {
  os::forgetProcessId();
  Runtime& rt = runtime();
  barrier::afterForkInChild();
  // Sharing the meshed pages with the parent would let each change the other's objects: a
  // child that cannot have its own copy stops before it runs any of the program's code. (Only
  // a fork that does not go through fork() itself, e.g. daemon(), can get here: fork() fails
  // with ENOMEM instead; see the wrapper in interpose.cc.)
  if (!g_forkSafe) {
    LineBuffer line;
    line.add("mesh: fork: no memory for the child's copy of the meshed heap; the child exits with 127\n");
    line.writeTo(2);
    os::exitNow(127);
  }
  if (!rt.heap.finishForkInChild()) {
    fatal("fork: could not map the child's copy of the meshed heap");
  }
  rt.registryLock.resetAfterFork();
  // Only this thread survives in the child: give back the spans other threads had attached.
  ThreadHeap* th = rt.threads;
  while (th != nullptr) {
    ThreadHeap* next = th->registryNext;
    if (th != t_thread.heap) {
      th->dropFreed();  // possibly mid-update when the fork happened
      th->dropLarge();
      th->detachAll();
      retireThreadHeap(th);
    }
    th = next;
  }
  leaveLockedSection(t_forkInterrupted);
}

void registerForkHandlers() { os::registerForkHandlers(forkPrepare, forkParent, forkChild); }

}  // namespace mesh
