// docs/behaviour.md section F: resource exhaustion (F24 address-space limit, F25 failing system
// calls injected with strace). The work runs in mesh_api_helper (linked like the tests).
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "api_test_util.h"

namespace mesh_api_test {
namespace {

const std::string kHelper = MESH_API_HELPER_PATH;

void LimitAddressSpace(rlim_t bytes) {
  rlimit rl{bytes, bytes};
  if (setrlimit(RLIMIT_AS, &rl) != 0) {
    static const char msg[] = "setrlimit(RLIMIT_AS) failed\n";
    ssize_t ignored = write(2, msg, sizeof msg - 1);
    (void)ignored;
    _exit(125);
  }
}

// ---- F24 ---------------------------------------------------------------------------------

TEST(Exhaustion, F24_AllocationFailsWithEnomemUnder1GiBAndSmallStillWorks) {
  ChildResult r = RunProgram({kHelper, "exhaust"}, 90000, {}, [] { LimitAddressSpace(rlim_t(1) << 30); });
  EXPECT_TRUE(r.Exited(0)) << "exit 2: NULL without ENOMEM, 3: malloc(32) failed after exhaustion, "
                              "4: nothing allocatable, 6: limit never hit, 7: no recovery\n"
                           << r.Describe();
  EXPECT_NE(r.output.find("exhaust-ok"), std::string::npos) << r.Describe();
}

TEST(Exhaustion, F24_StartsUnderSmallAddressSpaceLimits) {
  for (rlim_t mib : {rlim_t(512), rlim_t(256)}) {
    ChildResult r = RunProgram({kHelper, "work"}, 60000, {}, [mib] { LimitAddressSpace(mib << 20); });
    EXPECT_TRUE(r.Exited(0)) << "under RLIMIT_AS " << mib << " MiB: " << r.Describe();
    EXPECT_NE(r.output.find("work ok"), std::string::npos) << r.Describe();
  }
}

// ---- F25 ---------------------------------------------------------------------------------

// strace, or "" with the reason in *why.
std::string UsableStrace(std::string* why) {
  std::string strace = FindInPath("strace");
  if (strace.empty()) {
    *why = "strace is not installed (scripts/install-deps.sh installs it)";
    return "";
  }
  ChildResult r = RunProgram({strace, "-f", "-qq", "-o", "/dev/null", "-e", "trace=getpid", kHelper, "probe"}, 30000);
  if (!r.Exited(0)) {
    *why = "strace cannot trace here (ptrace not permitted?): " + r.Describe();
    return "";
  }
  return strace;
}

#define REQUIRE_STRACE(var)                   \
  std::string var;                            \
  do {                                        \
    std::string why;                          \
    var = UsableStrace(&why);                 \
    if (var.empty()) GTEST_SKIP() << why;     \
  } while (0)

ChildResult RunInjected(const std::string& strace, const std::string& syscall, const std::string& inject,
                        const char* mode = "work") {
  return RunProgram({strace, "-f", "-qq", "-o", "/dev/null", "-e", "trace=" + syscall, "-e",
                     "inject=" + syscall + ":" + inject, kHelper, mode},
                    90000);
}

bool LoaderFailure(const ChildResult& r) {
  return r.Exited(127) && r.output.find("error while loading shared libraries") != std::string::npos;
}

// With no descriptor to be had (EMFILE), the heap's file is a shared anonymous mapping, made
// without one: meshing still works.
TEST(Exhaustion, F25_MemfdCreateFailureFallsBackToASharedAnonymousFile) {
  REQUIRE_STRACE(strace);
  ChildResult r = RunInjected(strace, "memfd_create", "error=EMFILE");
  ASSERT_TRUE(r.Exited(0)) << r.Describe();
  EXPECT_NE(r.output.find("work ok"), std::string::npos) << r.Describe();
  if (HaveLibmesh()) {
    EXPECT_NE(r.output.find("memfd_backed=1"), std::string::npos)
        << "without memfd the heap must still have a file to mesh into: " << r.output;
  }
}

TEST(Exhaustion, F25_MemfdBackedByDefault) {
  MESH_REQUIRE_LIBMESH();
  ChildResult r = RunProgram({kHelper, "work"}, 60000);
  ASSERT_TRUE(r.Exited(0)) << r.Describe();
  EXPECT_NE(r.output.find("memfd_backed=1"), std::string::npos) << r.output;
}

// Counts calls of `syscall` in a traced run of "helper probe": before the first mprotect (the
// loader has mapped every library by then) and before main printed MAIN.
struct SyscallCounts {
  int before_relro = 0;
  int before_main = 0;
};

SyscallCounts CountBeforeMain(const std::string& strace, const std::string& syscall) {
  SyscallCounts c;
  char path[] = "/tmp/mesh_api_strace_XXXXXX";
  int fd = mkstemp(path);
  if (fd < 0) return c;
  close(fd);
  std::string set = syscall == "mprotect" ? "mprotect,write" : syscall + ",mprotect,write";
  ChildResult r = RunProgram({strace, "-f", "-qq", "-o", path, "-e", "trace=" + set, kHelper, "probe"}, 30000);
  std::ifstream in(path);
  std::string line;
  bool relro_seen = false;
  while (std::getline(in, line)) {
    if (line.find("write(1, \"MAIN") != std::string::npos) break;
    if (line.find("mprotect(") != std::string::npos) relro_seen = true;
    if (line.find(syscall + "(") != std::string::npos) {
      ++c.before_main;
      if (!relro_seen) ++c.before_relro;
    }
  }
  unlink(path);
  return c;
}

// Injects failures of `syscall` from its Nth call on, for several N around start-up and in
// main. Each run must either succeed (failures seen as NULL/ENOMEM by the helper) or, only
// while the dynamic loader is still mapping libraries, fail in the loader. Never a crash.
void CheckInjectedFailures(const std::string& strace, const std::string& syscall, const std::string& error,
                           bool literal_20) {
  SyscallCounts c = CountBeforeMain(strace, syscall);
  std::set<int> points = {c.before_relro + 1, c.before_relro + 2, c.before_relro + 4,
                          c.before_main + 1,  c.before_main + 2,  c.before_main + 5,
                          c.before_main + 20, c.before_main + 100};
  if (literal_20) points.insert(20);
  std::string summary;
  for (int n : points) {
    if (n < 1) continue;
    ChildResult r = RunInjected(strace, syscall, "error=" + error + ":when=" + std::to_string(n) + "+");
    bool ok = r.Exited(0) && r.output.find("work ok") != std::string::npos;
    bool loader = LoaderFailure(r) && n <= c.before_relro + 4;
    std::string detail;
    size_t at = r.output.find("work ok");
    if (at != std::string::npos) detail = " (" + r.output.substr(at, r.output.find('\n', at) - at) + ")";
    summary += "  when=" + std::to_string(n) + "+: " +
               (ok ? "ok" + detail : loader ? "loader failed (allowed)" : "FAILED") + "\n";
    EXPECT_TRUE(ok || loader) << syscall << " failing from call " << n << " (" << c.before_relro
                              << " calls before relocation, " << c.before_main << " before main): "
                              << r.Describe();
  }
  ::testing::Test::RecordProperty("injection_summary", summary);
  std::printf("%s failures injected (%d before relocation, %d before main):\n%s", syscall.c_str(),
              c.before_relro, c.before_main, summary.c_str());
}

TEST(Exhaustion, F25_MmapFailuresGiveEnomemNeverCrash) {
  REQUIRE_STRACE(strace);
  CheckInjectedFailures(strace, "mmap", "ENOMEM", true);
}

TEST(Exhaustion, F25_MprotectFailuresNeverCrash) {
  REQUIRE_STRACE(strace);
  CheckInjectedFailures(strace, "mprotect", "ENOMEM", false);
}

TEST(Exhaustion, F25_FallocateAndMadviseFailuresNeverCrash) {
  REQUIRE_STRACE(strace);
  for (const char* spec : {"fallocate:error=ENOSPC", "madvise:error=EAGAIN", "ftruncate:error=EFBIG"}) {
    std::string s = spec;
    std::string syscall = s.substr(0, s.find(':'));
    ChildResult r = RunInjected(strace, syscall, s.substr(s.find(':') + 1));
    EXPECT_TRUE(r.Exited(0) && r.output.find("work ok") != std::string::npos)
        << "with " << spec << ": " << r.Describe();
  }
}

}  // namespace
}  // namespace mesh_api_test
