// libFuzzer entry point: decodes the input into operations (model/ops.h) and runs them on a
// fresh GlobalHeap with the model's checks. A broken invariant prints the violation and the
// decoded sequence, then aborts (libFuzzer saves the input as a crash).
//
// Each input gets its own heap and thread heaps, so an input reproduces on its own. The heap's
// arena is its own memfd mapping: ASan and UBSan keep the process malloc for themselves.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "model/alloc_model.h"
#include "model/heap_executor.h"
#include "model/ops.h"

namespace {

constexpr size_t kMaxOps = 2000;
constexpr size_t kMaxPrintedOps = 300;

[[noreturn]] void reportAndAbort(const std::string& what, const std::vector<mesh::model::Op>& ops) {
  std::fprintf(stderr, "mesh-fuzz: invariant broken: %s\n", what.c_str());
  std::vector<mesh::model::Op> head(ops.begin(), ops.size() > kMaxPrintedOps
                                                     ? ops.begin() + kMaxPrintedOps
                                                     : ops.end());
  std::fprintf(stderr, "mesh-fuzz: the sequence (%zu ops%s):\n%s", ops.size(),
               ops.size() > kMaxPrintedOps ? ", first ones shown" : "",
               mesh::model::describe(head).c_str());
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace mesh::model;
  DecodedInput in = decodeOps(data, size, kMaxOps);
  FreshHeapOptions options;
  options.memfd = !in.flags.anonymousArena;
  options.seed = 1 + in.flags.seed;
  FreshHeapExecutor ex(options);
  if (!ex.ok()) {
    std::fprintf(stderr, "mesh-fuzz: cannot reserve a %zu MiB arena\n", options.arenaBytes >> 20);
    std::abort();
  }
  Limits limits;
  limits.maxLiveBytes = size_t{16} << 20;  // page faults on fresh memory dominate the cost
  limits.maxLiveObjects = 16384;
  Model model(ex, limits);
  std::string e = model.run(in.ops);
  if (!e.empty()) reportAndAbort(e, in.ops);
  return 0;
}
