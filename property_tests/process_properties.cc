// Properties of allocation sequences on the process allocator: this program links libmesh
// (target `mesh`), so malloc, free, realloc, posix_memalign, malloc_usable_size and mesh_compact
// are libmesh's, with its thread caches and process-wide heap. The model checks the same
// invariants as on fresh heaps (heap_properties.cc); objects that other code in the process
// allocates (gtest, rapidcheck) share the heap, which is part of the point.
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "model/alloc_model.h"
#include "model/process_executor.h"
#include "property_support.h"

namespace mesh::proptest {
namespace {

TEST(ProcessModel, RunsOnLibmesh) {
  model::ProcessExecutor ex;
  EXPECT_TRUE(ex.isLibmesh()) << "mesh_compact is not visible: this test program must link libmesh";
}

MESH_PROPERTY(ProcessModel, MixedSequencesKeepEveryInvariant, 100, ()) {
  auto ops = *genOps(OpMix{}, 1.5);
  model::ProcessExecutor ex;
  runSequence(ex, ops);
}

MESH_PROPERTY(ProcessModel, CrossThreadFreesAndCompactionKeepContents, 50, ()) {
  OpMix mix;
  mix = {.malloc = 3, .aligned = 1, .calloc = 1, .realloc = 2, .free = 2, .usableSize = 1,
         .compact = 2, .handOff = 4, .remoteAlloc = 4, .retireThread = 1, .oversize = 0,
         .allocMany = 3, .freeEvery = 3};
  auto ops = *genOps(mix, 1.0);
  model::ProcessExecutor ex;
  runSequence(ex, ops);
}

// Freeing any live object twice aborts with "mesh: double free of <p>". The sequence and the
// double free run in a forked child.
MESH_PROPERTY(ProcessModelDeath, DoubleFreeIsReported, 20, ()) {
  OpMix mix;
  mix.oversize = 0;
  auto ops = *genOps(mix, 0.5);
  auto target = *rc::gen::arbitrary<uint16_t>();
  int pipeFds[2];
  RC_ASSERT(pipe(pipeFds) == 0);
  ChildResult r = runInChild([&] {
    close(pipeFds[0]);
    model::ProcessExecutor ex;
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
  void* victim = nullptr;
  ssize_t got = read(pipeFds[0], &victim, sizeof victim);
  close(pipeFds[0]);
  if (got != static_cast<ssize_t>(sizeof victim)) {
    RC_FAIL(std::string(r.timedOut ? "the child hung (killed after a timeout)" : "the child stopped") +
            " before the double free (wait status " + std::to_string(r.status) + "):\n" + r.output);
  }
  std::string e = expectDoubleFreeReport(r, victim);
  if (!e.empty()) RC_FAIL(e);
}

// The fuzzer's seeds and saved crashes (fuzz/corpus, fuzz/regressions) replayed on the process
// allocator: the same sequences, now through the real entry points.
TEST(ProcessModel, FuzzCorpusAndRegressionsPass) {
  namespace fs = std::filesystem;
  std::vector<fs::path> inputs;
  for (const char* dir : {MESH_FUZZ_DIR "/corpus", MESH_FUZZ_DIR "/regressions"}) {
    for (const fs::directory_entry& e : fs::directory_iterator(dir)) {
      if (e.is_regular_file()) inputs.push_back(e.path());
    }
  }
  std::sort(inputs.begin(), inputs.end());
  ASSERT_FALSE(inputs.empty());
  for (const fs::path& f : inputs) {
    std::ifstream in(f, std::ios::binary);
    std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    model::DecodedInput decoded = model::decodeOps(bytes.data(), bytes.size());
    model::ProcessExecutor ex;
    model::Limits limits;
    limits.maxLiveBytes = size_t{16} << 20;  // as the fuzz harness
    limits.maxLiveObjects = 16384;
    std::string e;
    {
      model::Model m(ex, limits);
      e = m.run(decoded.ops);
    }
    EXPECT_EQ(e, "") << f << ":\n" << model::describe(decoded.ops);
  }
}

}  // namespace
}  // namespace mesh::proptest
