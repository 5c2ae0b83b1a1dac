#include "property_support.h"

#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <ostream>

#include "miniheap/size_classes.h"

namespace mesh::model {

void showValue(const Op& op, std::ostream& os) { os << describe(op); }

}  // namespace mesh::model

namespace mesh::proptest {
namespace {

Op make(OpKind kind) {
  Op o;
  o.kind = kind;
  return o;
}

rc::Gen<uint16_t> genTarget() { return rc::gen::arbitrary<uint16_t>(); }
rc::Gen<uint8_t> genArg() { return rc::gen::arbitrary<uint8_t>(); }

// Writes the failing sequence as a fuzzer input (fuzz/model/ops.h encoding), so it can be added
// to fuzz/regressions. The last write of a run is the shrunk sequence.
void saveFailure(const std::vector<Op>& ops) {
  const char* dir = std::getenv("MESH_PROPERTY_SAVE_DIR");
  if (dir == nullptr || *dir == '\0') return;
  const ::testing::TestInfo* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::string path = std::string(dir) + "/property-" + info->test_suite_name() + "-" + info->name();
  std::vector<uint8_t> bytes = model::encodeOps({}, ops);
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

}  // namespace

rc::Gen<uint32_t> genSize() {
  auto nearClass = rc::gen::apply(
      [](int cls, int delta) {
        return static_cast<uint32_t>(static_cast<int>(sizeClass(cls).size) + delta);
      },
      rc::gen::inRange(0, kNumClasses), rc::gen::inRange(-1, 3));
  return rc::gen::weightedOneOf<uint32_t>({
      {6, rc::gen::inRange<uint32_t>(0, 257)},
      {4, rc::gen::inRange<uint32_t>(0, kMaxSmallSize + 1)},
      {4, nearClass},
      {2, rc::gen::inRange<uint32_t>(kMaxSmallSize + 1, 300000)},
      {1, rc::gen::inRange<uint32_t>(kMaxSmallSize + 1, model::kMaxOpSize + 1)},
  });
}

rc::Gen<Op> genOp(const OpMix& mix) {
  auto sized = [](OpKind kind) {
    return rc::gen::map(genSize(), [kind](uint32_t size) {
      Op o = make(kind);
      o.size = size;
      return o;
    });
  };
  auto targeted = [](OpKind kind) {
    return rc::gen::map(genTarget(), [kind](uint16_t target) {
      Op o = make(kind);
      o.target = target;
      return o;
    });
  };
  auto aligned = rc::gen::apply(
      [](uint8_t alignLog2, uint32_t size) {
        Op o = make(OpKind::kAligned);
        o.alignLog2 = alignLog2;
        o.size = size;
        return o;
      },
      rc::gen::inRange<uint8_t>(model::kMinAlignLog2, model::kMaxAlignLog2 + 1), genSize());
  auto withArg = [](OpKind kind, rc::Gen<uint32_t> size) {
    return rc::gen::apply(
        [kind](uint8_t arg, uint32_t s) {
          Op o = make(kind);
          o.arg = arg;
          o.size = s;
          return o;
        },
        genArg(), size);
  };
  auto realloc = rc::gen::apply(
      [](uint16_t target, uint32_t size) {
        Op o = make(OpKind::kRealloc);
        o.target = target;
        o.size = size;
        return o;
      },
      genTarget(), genSize());
  auto argOnly = [](OpKind kind) {
    return rc::gen::map(genArg(), [kind](uint8_t arg) {
      Op o = make(kind);
      o.arg = arg;
      return o;
    });
  };
  auto freeEvery = rc::gen::apply(
      [](uint8_t arg, uint16_t target) {
        Op o = make(OpKind::kFreeEvery);
        o.arg = arg;
        o.target = target;
        return o;
      },
      genArg(), genTarget());
  // Bursts stay small enough that a hundred-op sequence runs in milliseconds.
  auto burstSize = rc::gen::weightedOneOf<uint32_t>({
      {4, rc::gen::inRange<uint32_t>(1, 1025)},
      {1, rc::gen::inRange<uint32_t>(1025, kMaxSmallSize + 1)},
  });
  auto w = [](int weight) { return static_cast<size_t>(weight < 0 ? 0 : weight); };
  return rc::gen::weightedOneOf<Op>({
      {w(mix.malloc), sized(OpKind::kMalloc)},
      {w(mix.free), targeted(OpKind::kFree)},
      {w(mix.realloc), realloc},
      {w(mix.calloc), withArg(OpKind::kCalloc, genSize())},
      {w(mix.aligned), aligned},
      {w(mix.usableSize), targeted(OpKind::kUsableSize)},
      {w(mix.compact), argOnly(OpKind::kCompact)},
      {w(mix.handOff), targeted(OpKind::kHandOff)},
      {w(mix.remoteAlloc), sized(OpKind::kRemoteAlloc)},
      {w(mix.retireThread), rc::gen::just(make(OpKind::kRetireThread))},
      {w(mix.oversize), argOnly(OpKind::kOversize)},
      {w(mix.allocMany), withArg(OpKind::kAllocMany, burstSize)},
      {w(mix.freeEvery), freeEvery},
  });
}

rc::Gen<std::vector<Op>> genOps(const OpMix& mix, double scale) {
  return rc::gen::scale(scale, rc::gen::container<std::vector<Op>>(genOp(mix)));
}

void runSequence(model::Executor& ex, const std::vector<Op>& ops, const model::Limits& limits) {
  std::string violation;
  {
    model::Model m(ex, limits);
    violation = m.run(ops);
    RC_TAG(m.stats().meshes > 0 ? "meshed" : "no mesh");
  }
  if (!violation.empty()) {
    saveFailure(ops);
    RC_FAIL(violation + " [executor: " + ex.name() + "]");
  }
}

ChildResult runInChild(const std::function<void()>& body) {
  // A hang fails the case instead of the whole test run. After the first one, rapidcheck's
  // shrinking reruns many similar cases: wait less for those.
  static int hangs = 0;
  const int timeoutMs = hangs == 0 ? 10000 : 2000;
  ChildResult r;
  int fds[2];
  if (pipe(fds) != 0) {
    r.status = -1;
    r.output = "pipe failed";
    return r;
  }
  std::fflush(nullptr);
  pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    dup2(fds[1], 2);
    close(fds[1]);
    body();
    _exit(0);
  }
  close(fds[1]);
  if (pid < 0) {
    close(fds[0]);
    r.status = -1;
    r.output = "fork failed";
    return r;
  }
  // Read until the child closes its end, within the time limit.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeoutMs);
  char buf[4096];
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    pollfd pfd{fds[0], POLLIN, 0};
    if (left.count() <= 0 || poll(&pfd, 1, static_cast<int>(left.count())) == 0) {
      kill(pid, SIGKILL);
      r.timedOut = true;
      ++hangs;
      break;
    }
    ssize_t n = read(fds[0], buf, sizeof buf);
    if (n <= 0) break;
    r.output.append(buf, static_cast<size_t>(n));
  }
  close(fds[0]);
  if (waitpid(pid, &r.status, 0) != pid) {
    r.status = -1;
    r.output += "\n(waitpid failed)";
  }
  return r;
}

std::string expectDoubleFreeReport(const ChildResult& r, const void* p) {
  if (r.timedOut) return "the child hung (killed after a timeout); stderr:\n" + r.output;
  std::string how = WIFSIGNALED(r.status) ? "killed by signal " + std::to_string(WTERMSIG(r.status))
                                          : "exit status " + std::to_string(WEXITSTATUS(r.status));
  if (!WIFSIGNALED(r.status) || WTERMSIG(r.status) != SIGABRT) {
    return "double free of " + std::to_string(reinterpret_cast<uintptr_t>(p)) +
           " did not abort (" + how + "); stderr:\n" + r.output;
  }
  const std::string prefix = "mesh: double free of 0x";
  size_t at = r.output.find(prefix);
  if (at != std::string::npos) {
    uintptr_t reported = std::strtoull(r.output.c_str() + at + prefix.size(), nullptr, 16);
    if (reported == reinterpret_cast<uintptr_t>(p)) return "";
  }
  char want[64];
  std::snprintf(want, sizeof want, "%#" PRIxPTR, reinterpret_cast<uintptr_t>(p));
  return std::string("aborted, but stderr lacks \"mesh: double free of ") + want + "\":\n" + r.output;
}

int casesFor(int percent) {
  int all = rc::detail::configuration().testParams.maxSuccess;
  return std::max(1, all * percent / 100);
}

}  // namespace mesh::proptest
