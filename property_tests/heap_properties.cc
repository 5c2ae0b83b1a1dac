// Properties of allocation sequences on fresh GlobalHeap instances (mesh_core): every case builds
// its own heap with a 256 MiB arena and two thread heaps, runs a generated sequence through the
// model (fuzz/model/alloc_model.h), which checks every invariant after every operation, then
// frees everything and checks that the heap is empty.
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "model/alloc_model.h"
#include "model/heap_executor.h"
#include "property_support.h"

namespace mesh::proptest {
namespace {

model::FreshHeapOptions options(bool memfd = true) {
  model::FreshHeapOptions o;
  o.memfd = memfd;
  o.seed = *rc::gen::inRange<uint64_t>(1, 1u << 20);  // thread heaps' shuffling
  return o;
}

void runFresh(const OpMix& mix, double scale, bool memfd = true) {
  auto ops = *genOps(mix, scale);
  model::FreshHeapExecutor ex(options(memfd));
  RC_ASSERT(ex.ok());
  runSequence(ex, ops);
}

MESH_PROPERTY(HeapModel, MixedSequencesKeepEveryInvariant, 100, ()) {
  runFresh(OpMix{}, 3.0);
}

MESH_PROPERTY(HeapModel, ReallocChainsKeepContents, 50, ()) {
  OpMix mix;
  mix = {.malloc = 3, .aligned = 1, .calloc = 1, .realloc = 12, .free = 1, .usableSize = 2,
         .compact = 1, .handOff = 0, .remoteAlloc = 1, .retireThread = 0, .oversize = 1,
         .allocMany = 0, .freeEvery = 0};
  runFresh(mix, 1.5);
}

MESH_PROPERTY(HeapModel, CrossThreadFreesKeepContents, 50, ()) {
  OpMix mix;
  mix = {.malloc = 4, .aligned = 1, .calloc = 0, .realloc = 1, .free = 3, .usableSize = 1,
         .compact = 1, .handOff = 5, .remoteAlloc = 4, .retireThread = 1, .oversize = 0,
         .allocMany = 1, .freeEvery = 1};
  runFresh(mix, 1.5);
}

// Many partly used spans, then compactions: the situation meshing works on.
MESH_PROPERTY(HeapModel, FragmentedSpansSurviveCompaction, 50, ()) {
  OpMix mix;
  mix = {.malloc = 2, .aligned = 0, .calloc = 1, .realloc = 1, .free = 2, .usableSize = 1,
         .compact = 3, .handOff = 1, .remoteAlloc = 1, .retireThread = 1, .oversize = 0,
         .allocMany = 4, .freeEvery = 3};
  runFresh(mix, 3.0);
}

MESH_PROPERTY(HeapModel, AnonymousArenaKeepsEveryInvariant, 30, ()) {
  runFresh(OpMix{}, 1.0, /*memfd=*/false);
}

// Freeing any live object twice, whatever came before, aborts with "mesh: double free of <p>".
MESH_PROPERTY(HeapModelDeath, DoubleFreeIsReported, 20, ()) {
  OpMix mix;
  mix.oversize = 0;
  auto ops = *genOps(mix, 0.5);
  auto target = *rc::gen::arbitrary<uint16_t>();
  auto opts = options();
  // Everything happens in the child: the parent's heap (a shared memfd) stays untouched.
  char* victim = nullptr;
  int pipeFds[2];
  RC_ASSERT(pipe(pipeFds) == 0);
  ChildResult r = runInChild([&] {
    close(pipeFds[0]);
    model::FreshHeapExecutor ex(opts);
    model::Model m(ex);
    for (const Op& op : ops) {
      std::string v = m.apply(op);
      if (!v.empty()) {
        std::fprintf(stderr, "%s\n", v.c_str());
        _exit(3);
      }
    }
    if (m.liveCount() == 0) m.apply(Op{});  // malloc(0)
    void* p = m.liveAddress(target % m.liveCount());
    if (write(pipeFds[1], &p, sizeof p) != static_cast<ssize_t>(sizeof p)) _exit(4);
    ex.release(p);
    ex.release(p);
  });
  close(pipeFds[1]);
  ssize_t got = read(pipeFds[0], &victim, sizeof victim);
  close(pipeFds[0]);
  if (got != static_cast<ssize_t>(sizeof victim)) {
    RC_FAIL(std::string(r.timedOut ? "the child hung (killed after a timeout)" : "the child stopped") +
            " before the double free (wait status " + std::to_string(r.status) + "):\n" + r.output);
  }
  std::string e = expectDoubleFreeReport(r, victim);
  if (!e.empty()) RC_FAIL(e);
}

}  // namespace
}  // namespace mesh::proptest
