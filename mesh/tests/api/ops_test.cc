// Operations features (issue 7): MESH_BACKGROUND_THREAD (idle compaction, lazy start, fork,
// pthread_exit), SIGUSR1/SIGUSR2 reports and application handlers, MESH_FREEPHYS_THREAD. Each
// test runs mesh_ops_helper (ops_helper.cc) with the options in its environment.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <regex>
#include <string>
#include <vector>

#include "api_test_util.h"

namespace {

using mesh_api_test::ChildResult;
using mesh_api_test::RunProgram;

const std::string kHelper = MESH_OPS_HELPER_PATH;
const std::string kBackground = "MESH_BACKGROUND_THREAD=1";
// Control runs say "off" explicitly: the suite may run with the options in its environment.
const std::string kNoBackground = "MESH_BACKGROUND_THREAD=0";
const std::string kNoFreePhys = "MESH_FREEPHYS_THREAD=0";

// The value of "key=" in the output, or -1.
long long Value(const std::string& out, const std::string& key) {
  size_t at = out.find(key + "=");
  return at == std::string::npos ? -1 : std::atoll(out.c_str() + at + key.size() + 1);
}

ChildResult Helper(const std::vector<std::string>& args, const std::vector<std::string>& env) {
  std::vector<std::string> argv{kHelper};
  argv.insert(argv.end(), args.begin(), args.end());
  return RunProgram(argv, 60000, env);
}

TEST(BackgroundThread, IdleProcessCompactsAndTheThreadStartsLazily) {
  ChildResult r = Helper({"idle", "10000"}, {kBackground, "MESH_PERIOD_MS=200"});
  ASSERT_TRUE(r.Exited(0)) << r.Describe();
  EXPECT_EQ(Value(r.output, "threads_at_main"), 1) << "no thread before main():\n" << r.output;
  EXPECT_EQ(Value(r.output, "threads_after_warmup"), 2) << r.output;
  // No malloc or free while idle, yet meshes happen and PSS falls.
  EXPECT_GT(Value(r.output, "idle_mesh_after"), Value(r.output, "idle_mesh_start") + 50) << r.output;
  EXPECT_LE(Value(r.output, "idle_pss_after"), Value(r.output, "idle_pss_before")) << r.output;
  EXPECT_LT(Value(r.output, "idle_pss_after"), Value(r.output, "idle_fragment_peak_pss") - 1024) << r.output;
}

// Default options (none set, whatever the suite's environment holds), plus `set`.
std::vector<std::string> Defaults(std::initializer_list<std::string> set = {}) {
  std::vector<std::string> env = {"-MESH_BACKGROUND_THREAD", "-MESH_FREEPHYS_THREAD", "-MESH_PERIOD_MS",
                                  "-MESH_DECAY_MS", "-MESH_MAX_DIRTY_MB", "-MESH_NO_MEMFD",
                                  "-MESH_QUIET_THREAD_MS", "-MESH_SPARSE_PCT"};
  env.insert(env.end(), set.begin(), set.end());
  return env;
}
const std::vector<std::string> kDefaults = Defaults();

TEST(DefaultPacing, SmallProgramHasNoThreadAndAnIdleFragmentedHeapShrinks) {
  ChildResult r = Helper({"default-idle", "30000"}, kDefaults);
  ASSERT_TRUE(r.Exited(0)) << r.Describe();
  EXPECT_EQ(Value(r.output, "threads_at_main"), 1) << r.output;
  EXPECT_EQ(Value(r.output, "threads_after_warmup"), 1) << "a small program got a thread:\n" << r.output;
  EXPECT_EQ(Value(r.output, "thread_stat_after_warmup"), 0) << r.output;
  EXPECT_EQ(Value(r.output, "threads_after_fragment"), 2) << "8 MiB to give back and no thread:\n" << r.output;
  EXPECT_EQ(Value(r.output, "thread_stat"), 1) << r.output;
  // The write-protection service (mesh-wp) starts with the background thread, where the kernel
  // lets it handle kernel faults.
  EXPECT_EQ(Value(r.output, "wp_threads_after_warmup"), 0) << r.output;
  EXPECT_EQ(Value(r.output, "wp_threads_after_fragment"), Value(r.output, "kernel_writes_wait")) << r.output;
  if (mesh_api_test::UffdExpected()) {
    EXPECT_EQ(Value(r.output, "kernel_writes_wait"), 1) << r.output;
  }
  // No API call: meshes happen (from the frees on, and while idle) and PSS falls by 3 MiB of
  // the 8.4 MiB freed, from the fragmented heap's peak (the thread, started during the frees,
  // may have done most of it before the idle phase began).
  EXPECT_GT(Value(r.output, "idle_mesh_after"), Value(r.output, "idle_mesh_start") + 50) << r.output;
  EXPECT_LE(Value(r.output, "idle_pss_after"), Value(r.output, "idle_pss_before")) << r.output;
  EXPECT_LT(Value(r.output, "idle_pss_after"), Value(r.output, "idle_fragment_peak_pss") - 3072) << r.output;
  EXPECT_GT(Value(r.output, "paced_meshes"), 50) << r.output;
  EXPECT_GT(Value(r.output, "paced_mesh_ns"), 0) << r.output;
}

TEST(DefaultPacing, WithTheThreadOffAnIdleHeapStaysAsItIs) {
  // The control of the test above: the same program with MESH_BACKGROUND_THREAD=0.
  ChildResult r = Helper({"default-idle", "1500"}, Defaults({kNoBackground}));
  ASSERT_TRUE(r.Exited(0)) << r.Describe();
  EXPECT_EQ(Value(r.output, "threads_after_fragment"), 1) << r.output;
  EXPECT_EQ(Value(r.output, "thread_stat"), 0) << r.output;
  EXPECT_EQ(Value(r.output, "idle_mesh_after"), Value(r.output, "idle_mesh_before")) << r.output;
}

TEST(DefaultPacing, ForkChildRestartsTheThreadAndCompacts) {
  ChildResult r = Helper({"default-fork", "30000"}, kDefaults);
  ASSERT_TRUE(r.Exited(0)) << r.Describe();
  EXPECT_EQ(Value(r.output, "child_threads_at_fork"), 1) << r.output;
  EXPECT_EQ(Value(r.output, "child_threads_after_fragment"), 2) << r.output;
  EXPECT_GT(Value(r.output, "child_mesh_after"), Value(r.output, "child_mesh_start") + 50) << r.output;
  // From the fragmented heap's peak: the restarted thread may mesh most of it before the idle
  // phase begins.
  EXPECT_LE(Value(r.output, "child_pss_after"), Value(r.output, "child_pss_before")) << r.output;
  EXPECT_LT(Value(r.output, "child_pss_after"), Value(r.output, "child_fragment_peak_pss") - 1024) << r.output;
  EXPECT_GT(Value(r.output, "parent_mesh_after"), Value(r.output, "parent_mesh_start") + 50) << r.output;
}

TEST(DefaultPacing, ThreadDoesNotKeepTheProcessAliveAfterMainCallsPthreadExit) {
  ChildResult r = Helper({"pthread-exit"}, kDefaults);
  ASSERT_FALSE(r.timed_out) << r.Describe();
  EXPECT_TRUE(r.Exited(0)) << r.Describe();
  EXPECT_NE(r.output.find("main_exits"), std::string::npos) << r.output;
}

TEST(DefaultPacing, FreePagesGoBackAfterTheDecayTime) {
  // 48 MiB of freed blocks, below MESH_MAX_DIRTY_MB: without decay they would stay.
  ChildResult r = Helper({"decay", "20000"}, kDefaults);
  ASSERT_TRUE(r.Exited(0)) << r.Describe();
  EXPECT_GE(Value(r.output, "dirty_after_free_mb"), 40) << "the blocks went back at once:\n" << r.output;
  EXPECT_GE(Value(r.output, "decayed_mb"), 40) << r.output;
  EXPECT_LE(Value(r.output, "dirty_mb"), 8) << r.output;
  // PSS falls by what decay returned, less up to 1 MiB for the two threads (mesh-bg, mesh-wp)
  // that start while the freed blocks wait: their stacks and thread-local storage were not in
  // pss_full. (On a loaded machine the wait ends at exactly 40 MiB decayed, and the threads'
  // pages showed: 51 KiB short of a 40-MiB fall.)
  EXPECT_LT(Value(r.output, "pss_after"), Value(r.output, "pss_full") - 39 * 1024) << r.output;
  // Control: with MESH_DECAY_MS=0 the freed pages stay (up to MESH_MAX_DIRTY_MB).
  ChildResult off = Helper({"decay", "3000"}, Defaults({"MESH_DECAY_MS=0"}));
  ASSERT_TRUE(off.Exited(0)) << off.Describe();
  EXPECT_EQ(Value(off.output, "decayed_mb"), 0) << off.output;
  EXPECT_GE(Value(off.output, "dirty_mb"), 40) << off.output;
}

TEST(DefaultPacing, D32_AQuietThreadsCacheIsReturnedAndTheThreadCarriesOn) {
  // A worker frees most of what it allocated and sleeps in read(): with the default options its
  // freed stacks and attached spans go back within a few seconds, the spans that only they kept
  // allocated are released, and the woken worker finds its objects intact and allocates again.
  // Sparse spans off (MESH_SPARSE_PCT=0, G33): the worker's scattered frees would otherwise send
  // some objects straight to their spans, which the background thread folds whenever it runs, and
  // the control below could not tell that from a returned cache.
  ChildResult r = Helper({"quiet-thread", "15000"}, Defaults({"MESH_SPARSE_PCT=0"}));
  ASSERT_TRUE(r.Exited(0)) << r.Describe();
  EXPECT_GE(Value(r.output, "cache_before_kib"), 128) << r.output;
  EXPECT_EQ(Value(r.output, "cache_after_kib"), 0) << r.output;
  EXPECT_GE(Value(r.output, "returns"), 1) << r.output;
  EXPECT_LE(Value(r.output, "arena_after_kib"), Value(r.output, "arena_before_kib") - 256) << r.output;
  // Control: MESH_QUIET_THREAD_MS=0 leaves the cache where it is.
  ChildResult off = Helper({"quiet-thread", "3000"}, Defaults({"MESH_QUIET_THREAD_MS=0", "MESH_SPARSE_PCT=0"}));
  ASSERT_TRUE(off.Exited(0)) << off.Describe();
  EXPECT_EQ(Value(off.output, "cache_after_kib"), Value(off.output, "cache_before_kib")) << off.output;
  EXPECT_EQ(Value(off.output, "returns"), 0) << off.output;
  EXPECT_EQ(Value(off.output, "arena_after_kib"), Value(off.output, "arena_before_kib")) << off.output;
}

TEST(DefaultPacing, G33_SparseSpansEmptyWhileTheProgramReplacesItsObjects) {
  // 32 MiB of 256-byte objects, 7 in 8 freed, then 65,536 replacements of random survivors (each
  // about four times). Meshing is off, so what the arena gives back is the sparse spans' doing:
  // the replacements go to fuller spans and the sparse ones empty.
  ChildResult r = Helper({"sparse-churn", "65536"}, Defaults({"MESH_PERIOD_MS=0"}));
  ASSERT_TRUE(r.Exited(0)) << r.Describe();
  long long before = Value(r.output, "arena_before_kib");
  EXPECT_GE(before, 24 * 1024) << r.output;
  EXPECT_LE(Value(r.output, "arena_after_kib"), before / 3) << r.output;
  EXPECT_GE(Value(r.output, "sparse_frees"), 8192) << r.output;  // most survivors were replaced
  // Control: with MESH_SPARSE_PCT=0 the replacements reuse the holes their frees left.
  ChildResult off = Helper({"sparse-churn", "65536"}, Defaults({"MESH_PERIOD_MS=0", "MESH_SPARSE_PCT=0"}));
  ASSERT_TRUE(off.Exited(0)) << off.Describe();
  EXPECT_GE(Value(off.output, "arena_after_kib"), Value(off.output, "arena_before_kib") * 9 / 10) << off.output;
  EXPECT_EQ(Value(off.output, "sparse_frees"), 0) << off.output;
}

TEST(DefaultPacing, G33_SparseSpansEmptyWhenThreadsReplaceEachOthersObjects) {
  // The same with four threads replacing random survivors, each object's successor made by
  // whichever thread picked it: frees of sparse spans' objects and of other threads' objects run
  // concurrently. Every object's contents are checked at each replacement and at the end.
  ChildResult r = Helper({"sparse-churn", "65536", "4"}, Defaults({"MESH_PERIOD_MS=0"}));
  ASSERT_TRUE(r.Exited(0)) << r.Describe();
  long long before = Value(r.output, "arena_before_kib");
  EXPECT_GE(before, 24 * 1024) << r.output;
  EXPECT_LE(Value(r.output, "arena_after_kib"), before / 3) << r.output;
  EXPECT_GE(Value(r.output, "sparse_frees"), 8192) << r.output;
}

TEST(BackgroundThread, D32_CachesOfThreadsThatPauseAndResumeStayCorrect) {
  // Threads pause for 0-50 ms between bursts while caches quiet for 1 ms are returned: owners
  // come back while their cache is being returned. Every word of every object is checked.
  // (quiet_cache_test.cc drives the handshake itself, thousands of times.)
  ChildResult r = Helper({"quiet-race", "3000"},
                         {kBackground, "MESH_QUIET_THREAD_MS=1", "MESH_PERIOD_MS=1"});
  ASSERT_TRUE(r.Exited(0)) << r.Describe();
  EXPECT_EQ(Value(r.output, "bad"), 0) << r.output;
  EXPECT_GE(Value(r.output, "returns"), 10) << "the caches were hardly ever returned:\n" << r.output;
}

TEST(DefaultPacing, DecayWorksWithoutTheThreadToo) {
  // With the thread off, the freeing thread returns old free pages on its next slow frees.
  ChildResult r = Helper({"decay-free-path", "20000"}, Defaults({kNoBackground, "MESH_DECAY_MS=200"}));
  ASSERT_TRUE(r.Exited(0)) << r.Describe();
  EXPECT_EQ(Value(r.output, "threads"), 1) << r.output;
  EXPECT_GE(Value(r.output, "decayed_mb"), 40) << r.output;
}

TEST(BackgroundThread, WithoutTheOptionNothingHappensWhileIdle) {
  ChildResult r = Helper({"idle", "1500"}, {kNoBackground, kNoFreePhys, "MESH_PERIOD_MS=200"});
  ASSERT_TRUE(r.Exited(0)) << r.Describe();
  EXPECT_EQ(Value(r.output, "threads_after_warmup"), 1) << r.output;
  EXPECT_EQ(Value(r.output, "idle_mesh_after"), Value(r.output, "idle_mesh_before")) << r.output;
}

TEST(BackgroundThread, ForkChildRestartsItAndCompacts) {
  ChildResult r = Helper({"fork", "10000"}, {kBackground, "MESH_PERIOD_MS=200"});
  ASSERT_TRUE(r.Exited(0)) << r.Describe();
  EXPECT_EQ(Value(r.output, "child_threads_at_fork"), 1) << r.output;
  EXPECT_EQ(Value(r.output, "child_threads_after_fragment"), 2) << r.output;
  // Counted from before the heap was fragmented: the restarted thread may mesh while it is.
  EXPECT_GT(Value(r.output, "child_mesh_after"), Value(r.output, "child_mesh_start") + 50) << r.output;
  EXPECT_GT(Value(r.output, "parent_mesh_after"), Value(r.output, "parent_mesh_start") + 50) << r.output;
}

TEST(BackgroundThread, ForksWhileItMeshesNeverDeadlock) {
  // A child that hangs is killed with the helper after the timeout, which fails the test.
  ChildResult r = Helper({"fork-storm", "40"}, {kBackground, "MESH_FREEPHYS_THREAD=1", "MESH_PERIOD_MS=1"});
  ASSERT_TRUE(r.Exited(0)) << r.Describe();
  EXPECT_NE(r.output.find("failed=0"), std::string::npos) << r.output;
  EXPECT_GT(Value(r.output, "meshes"), 0) << r.output;
}

TEST(BackgroundThread, DoesNotKeepTheProcessAliveAfterMainCallsPthreadExit) {
  ChildResult r = Helper({"pthread-exit"}, {kBackground});
  ASSERT_FALSE(r.timed_out) << r.Describe();
  EXPECT_TRUE(r.Exited(0)) << r.Describe();
  EXPECT_NE(r.output.find("main_exits"), std::string::npos) << r.output;
}

TEST(SignalReports, Sigusr1PrintsTheSummaryAndSigusr2TheDetails) {
  ChildResult r = Helper({"report"}, {kBackground});
  ASSERT_TRUE(r.Exited(0)) << r.Describe();
  const std::string& out = r.output;
  EXPECT_NE(out.find("(SIGUSR1)"), std::string::npos) << out;
  EXPECT_NE(out.find("(SIGUSR2)"), std::string::npos) << out;
  for (const char* label : {"MESH COUNT:", "Bytes In Use:", "PSS KiB:", "Mappings:"}) {
    EXPECT_NE(out.find(label), std::string::npos) << label << " missing:\n" << out;
  }
  // The summary comes first and has no per-class lines; the detailed one has them.
  size_t usr2 = out.find("(SIGUSR2)");
  size_t firstClassLine = out.find("MeshInfo partial class:");
  ASSERT_NE(firstClassLine, std::string::npos) << out;
  EXPECT_GT(firstClassLine, usr2) << out;
  std::regex classLine(R"(MeshInfo partial class:\d+, length:\d+, size:\d+, spans:\d+, occupancy:[0-9.]+%, meshes:\d+)");
  EXPECT_TRUE(std::regex_search(out, classLine)) << out;
}

TEST(SignalReports, WithoutTheBackgroundThreadSigusr1KeepsItsDefaultAction) {
  ChildResult r = Helper({"raise-usr1"}, {kNoBackground});
  EXPECT_TRUE(r.Signaled(SIGUSR1)) << r.Describe();
  // The default starts a thread for a fragmented heap, but only MESH_BACKGROUND_THREAD=1 takes
  // the report signals.
  ChildResult def = Helper({"raise-usr1-thread"}, kDefaults);
  EXPECT_TRUE(def.Signaled(SIGUSR1)) << def.Describe();
  ChildResult on = Helper({"raise-usr1"}, {kBackground});
  EXPECT_TRUE(on.Exited(0)) << on.Describe();
  EXPECT_NE(on.output.find("(SIGUSR1)"), std::string::npos) << on.output;
}

// The handler is installed when the option is read (at start-up), not when the thread starts:
// a report signal never ends the process (docs/host-contract.md, section 4 "Signals").
TEST(SignalReports, Sigusr1BeforeTheThreadStartsNeverKillsAndIsPrintedLater) {
  ChildResult r = Helper({"usr1-early"}, {kBackground});
  ASSERT_TRUE(r.Exited(0)) << r.Describe();
  EXPECT_NE(r.output.find("survived_early"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("(SIGUSR1)"), std::string::npos) << "the thread prints the report:\n" << r.output;
}

TEST(SignalReports, ApplicationHandlerInstalledFirstWins) {
  ChildResult r = Helper({"handler-first"}, {kBackground});
  ASSERT_TRUE(r.Exited(0)) << r.Describe();
  EXPECT_EQ(Value(r.output, "app_handler_runs"), 1) << r.output;
  EXPECT_EQ(r.output.find("(SIGUSR1)"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("(SIGUSR2)"), std::string::npos) << "SIGUSR2 is still ours:\n" << r.output;
}

TEST(SignalReports, ApplicationHandlerInstalledLaterWins) {
  ChildResult r = Helper({"handler-later"}, {kBackground});
  ASSERT_TRUE(r.Exited(0)) << r.Describe();
  EXPECT_EQ(Value(r.output, "app_handler_runs"), 1) << r.output;
  EXPECT_EQ(r.output.find("(SIGUSR1)"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("(SIGUSR2)"), std::string::npos) << r.output;
}

TEST(FreePhysThread, ReleasesFreedMemoryOffTheFreeingThread) {
  ChildResult r = Helper({"freephys", "5000"}, {"MESH_FREEPHYS_THREAD=1", "MESH_MAX_DIRTY_MB=1"});
  ASSERT_TRUE(r.Exited(0)) << r.Describe();
  EXPECT_GE(Value(r.output, "released_mb"), 48) << r.output;
  EXPECT_LE(Value(r.output, "dirty_mb"), 16) << r.output;
  EXPECT_LT(Value(r.output, "pss_after"), Value(r.output, "pss_full") - 40 * 1024) << r.output;
}

// Runs the freephys helper under strace and counts hole punches by the main thread and by
// others. Empty (and a reason) when strace cannot trace here.
struct Punches {
  int main = 0;
  int other = 0;
};

bool TracePunches(const std::vector<std::string>& env, Punches* out, std::string* why) {
  std::string strace = mesh_api_test::FindInPath("strace");
  if (strace.empty()) {
    *why = "strace is not installed";
    return false;
  }
  char path[] = "/tmp/mesh_ops_strace_XXXXXX";
  int fd = mkstemp(path);
  if (fd < 0) {
    *why = "mkstemp failed";
    return false;
  }
  close(fd);
  ChildResult r = RunProgram({strace, "-f", "-qq", "-o", path, "-e", "trace=fallocate,madvise,process_madvise", kHelper, "freephys", "3000"},
                             60000, env);
  std::ifstream in(path);
  std::string line;
  long long pid = Value(r.output, "pid");
  while (std::getline(in, line)) {
    // Freed pages go back with madvise(MADV_DONTNEED) or, for several ranges at once,
    // process_madvise(MADV_DONTNEED) (anonymous spans), or a punched hole (spans in the memfd).
    bool punch = line.find("fallocate(") != std::string::npos && line.find("PUNCH_HOLE") != std::string::npos;
    bool dontneed = line.find("madvise(") != std::string::npos && line.find("MADV_DONTNEED") != std::string::npos;
    if (!punch && !dontneed) continue;
    (std::atoll(line.c_str()) == pid ? out->main : out->other) += 1;
  }
  unlink(path);
  if (!r.Exited(0) || pid <= 0) {
    *why = "strace cannot trace here: " + r.Describe();
    return false;
  }
  return true;
}

TEST(FreePhysThread, HolePunchingHappensOnTheServiceThread) {
  Punches on, off;
  std::string why;
  // Without the background thread's own rounds, which punch too (and are allowed to).
  if (!TracePunches({"MESH_FREEPHYS_THREAD=1", kNoBackground, "MESH_MAX_DIRTY_MB=1"}, &on, &why)) {
    GTEST_SKIP() << why;
  }
  EXPECT_GT(on.other, 0);
  EXPECT_EQ(on.main, 0) << "the freeing thread punched holes itself";
  // The same run without the option punches on the main thread (checks the test itself).
  ASSERT_TRUE(TracePunches({kNoFreePhys, kNoBackground, "MESH_MAX_DIRTY_MB=1"}, &off, &why)) << why;
  EXPECT_GT(off.main, 0);
}

}  // namespace
