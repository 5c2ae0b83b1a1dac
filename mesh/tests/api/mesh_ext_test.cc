// The libmesh extension API (mesh.h): statistics, JSON, options, compaction, release.
// Everything here is libmesh-only (skips against glibc).
#include <gtest/gtest.h>
#include <malloc.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <climits>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "api_test_util.h"

namespace mesh_api_test {
namespace {

const std::string kHelper = MESH_API_HELPER_PATH;

class MeshExt : public ::testing::Test {
 protected:
  void SetUp() override {
    MESH_REQUIRE_LIBMESH();
    m_ = Mesh();
    ASSERT_NE(m_->stats_json, nullptr);
    ASSERT_NE(m_->print_stats, nullptr);
    ASSERT_NE(m_->set_option, nullptr);
    ASSERT_NE(m_->get_option, nullptr);
    ASSERT_NE(m_->compact, nullptr);
    ASSERT_NE(m_->release_free_memory, nullptr);
  }
  const MeshApi* m_ = nullptr;
};

// ---- statistics --------------------------------------------------------------------------

TEST_F(MeshExt, GetStatsCountsAllocationsAndFrees) {
  EXPECT_EQ(m_->get_stats(nullptr), EINVAL);
  mesh_stats s0{}, s1{}, s2{};
  ASSERT_EQ(m_->get_stats(&s0), 0);
  std::vector<void*> small;
  for (int i = 0; i < 1000; ++i) small.push_back(malloc(Opaque(100)));
  void* big = malloc(Opaque(8 * kMiB));
  ASSERT_NE(big, nullptr);
  memset(big, 1, 8 * kMiB);
  ASSERT_EQ(m_->get_stats(&s1), 0);
  EXPECT_GE(s1.allocs, s0.allocs + 1001);
  EXPECT_GE(s1.bytes_in_use, s0.bytes_in_use + 1000 * 100 + 8 * kMiB);
  EXPECT_GE(s1.large_allocs, s0.large_allocs + 1);
  EXPECT_GE(s1.large_bytes, s0.large_bytes + 8 * kMiB);
  EXPECT_GE(s1.arena_bytes, s1.bytes_in_use) << "arena smaller than the bytes in use";
  EXPECT_GE(s1.arena_reserved, s1.arena_bytes);
  EXPECT_GE(s1.mh_live, 1u);
  EXPECT_GE(s1.mh_hwm, s1.mh_live);
  EXPECT_EQ(s1.mh_live, s1.mh_alloc_count - s1.mh_free_count);
  EXPECT_GE(s1.thread_heaps, 1u);
  long noMemfd = -1;
  ASSERT_EQ(m_->get_option("no_memfd", &noMemfd), 0);
  EXPECT_EQ(s1.memfd_backed, noMemfd == 0 ? 1u : 0u) << "MESH_NO_MEMFD=" << noMemfd;
  for (void* p : small) free(p);
  free(big);
  ASSERT_EQ(m_->get_stats(&s2), 0);
  EXPECT_GE(s2.frees, s1.frees + 1001);
  EXPECT_LE(s2.bytes_in_use + 1000 * 100 + 8 * kMiB, s1.bytes_in_use);
  EXPECT_LE(s2.large_bytes + 8 * kMiB, s1.large_bytes);
}

// A small JSON checker: true when text is exactly one valid JSON value.
class JsonChecker {
 public:
  explicit JsonChecker(const std::string& s) : s_(s) {}
  bool Valid() {
    Ws();
    if (!Value()) return false;
    Ws();
    return i_ == s_.size();
  }

 private:
  void Ws() {
    while (i_ < s_.size() && strchr(" \t\r\n", s_[i_])) ++i_;
  }
  bool Lit(const char* w) {
    size_t n = strlen(w);
    if (s_.compare(i_, n, w) != 0) return false;
    i_ += n;
    return true;
  }
  bool String() {
    if (s_[i_] != '"') return false;
    for (++i_; i_ < s_.size(); ++i_) {
      if (s_[i_] == '\\') {
        ++i_;
      } else if (s_[i_] == '"') {
        ++i_;
        return true;
      } else if (static_cast<unsigned char>(s_[i_]) < 0x20) {
        return false;
      }
    }
    return false;
  }
  bool Number() {
    size_t start = i_;
    if (s_[i_] == '-') ++i_;
    while (i_ < s_.size() && (isdigit(static_cast<unsigned char>(s_[i_])) || strchr(".eE+-", s_[i_]))) ++i_;
    return i_ > start && isdigit(static_cast<unsigned char>(s_[i_ - 1]));
  }
  bool Value() {
    if (i_ >= s_.size()) return false;
    char c = s_[i_];
    if (c == '{') return Container('}', true);
    if (c == '[') return Container(']', false);
    if (c == '"') return String();
    if (c == 't') return Lit("true");
    if (c == 'f') return Lit("false");
    if (c == 'n') return Lit("null");
    return Number();
  }
  bool Container(char close, bool object) {
    ++i_;
    Ws();
    if (i_ < s_.size() && s_[i_] == close) {
      ++i_;
      return true;
    }
    for (;;) {
      Ws();
      if (object) {
        if (i_ >= s_.size() || !String()) return false;
        Ws();
        if (i_ >= s_.size() || s_[i_] != ':') return false;
        ++i_;
        Ws();
      }
      if (!Value()) return false;
      Ws();
      if (i_ >= s_.size()) return false;
      if (s_[i_] == ',') {
        ++i_;
        continue;
      }
      if (s_[i_] == close) {
        ++i_;
        return true;
      }
      return false;
    }
  }
  const std::string& s_;
  size_t i_ = 0;
};

TEST_F(MeshExt, StatsJsonIsValidAndComplete) {
  size_t need = m_->stats_json(nullptr, 0);
  ASSERT_GT(need, 2u);
  std::vector<char> buf(need + 64, '\x7f');
  size_t got = m_->stats_json(buf.data(), buf.size());
  EXPECT_GE(got + 32, need);  // figures may change a little between the calls
  std::string text(buf.data());
  EXPECT_EQ(text.size(), got);
  ASSERT_FALSE(text.empty());
  EXPECT_EQ(text.front(), '{') << text;
  EXPECT_EQ(text.back() == '\n' ? text[text.size() - 2] : text.back(), '}') << text;
  EXPECT_TRUE(JsonChecker(text).Valid()) << "not valid JSON: " << text;
#define MESH_STAT(name, label, doc) \
  EXPECT_NE(text.find("\"" #name "\""), std::string::npos) << "field " #name " missing: " << text;
#include "mesh/stats_fields.def"
#undef MESH_STAT
}

TEST_F(MeshExt, StatsJsonTruncatesLikeSnprintf) {
  size_t need = m_->stats_json(nullptr, 0);
  char small[11];
  memset(small, 'x', sizeof small);
  size_t got = m_->stats_json(small, 10);
  EXPECT_GE(got + 32, need);
  EXPECT_GT(got, 9u);
  EXPECT_EQ(small[9], '\0') << "not NUL-terminated within len";
  EXPECT_EQ(small[10], 'x') << "wrote past len";
  EXPECT_EQ(strlen(small), 9u);
  EXPECT_EQ(small[0], '{');
  char one = 'y';
  m_->stats_json(&one, 1);
  EXPECT_EQ(one, '\0');
}

TEST_F(MeshExt, PrintStatsWritesTheReport) {
  std::vector<void*> ptrs;
  for (int i = 0; i < 1000; ++i) ptrs.push_back(malloc(Opaque(200)));
  std::string level1 = CaptureStderr([&] { m_->print_stats(2, 1); });
  std::string level2 = CaptureStderr([&] { m_->print_stats(2, 2); });
  for (void* p : ptrs) free(p);
  EXPECT_NE(level1.find("Alloc Count"), std::string::npos) << level1;
  EXPECT_NE(level1.find("MESH COUNT"), std::string::npos) << level1;
  EXPECT_GT(level2.size(), level1.size()) << "level 2 must add the per-size-class lines";
}

TEST_F(MeshExt, MallocstatsEnvironmentPrintsAtExit) {
  ChildResult r = RunProgram({kHelper, "probe"}, 30000, {"MALLOCSTATS=1"});
  ASSERT_TRUE(r.Exited(0)) << r.Describe();
  EXPECT_NE(r.output.find("Alloc Count"), std::string::npos) << r.output;
  ChildResult quiet = RunProgram({kHelper, "probe"}, 30000, {"MALLOCSTATS=0"});
  ASSERT_TRUE(quiet.Exited(0)) << quiet.Describe();
  EXPECT_EQ(quiet.output, "MAIN\n") << "MALLOCSTATS=0 must print nothing";
}

// ---- options -----------------------------------------------------------------------------

struct OptionInfo {
  const char* name;
  const char* env;
  long def, min, max;
};
const OptionInfo kOptions[] = {
#define MESH_OPTION(name, env, def, min, max, help) {#name, env, def, min, max},
#include "mesh/options.def"
#undef MESH_OPTION
};

TEST_F(MeshExt, SetOptionThenGet) {
  long old = 0;
  ASSERT_EQ(m_->get_option("period_ms", &old), 0);
  EXPECT_EQ(m_->set_option("period_ms", 50), 0);
  long v = 0;
  ASSERT_EQ(m_->get_option("period_ms", &v), 0);
  EXPECT_EQ(v, 50);
  EXPECT_EQ(m_->set_option("period_ms", old), 0);
}

TEST_F(MeshExt, UnknownOptionIsEinval) {
  long v = 12345;
  EXPECT_EQ(m_->set_option("no_such_option", 1), EINVAL);
  EXPECT_EQ(m_->get_option("no_such_option", &v), EINVAL);
  EXPECT_EQ(v, 12345) << "get_option wrote the value of an unknown option";
  EXPECT_EQ(m_->set_option("", 1), EINVAL);
  EXPECT_EQ(m_->set_option("PERIOD_MS", 1), EINVAL) << "names are the lower-case option names";
  EXPECT_EQ(m_->set_option("MESH_PERIOD_MS", 1), EINVAL);
  EXPECT_EQ(m_->set_option("period_ms_", 1), EINVAL);
  EXPECT_EQ(m_->set_option(nullptr, 1), EINVAL);
  EXPECT_EQ(m_->get_option(nullptr, &v), EINVAL);
}

TEST_F(MeshExt, EveryOptionHonoursItsRange) {
  for (const OptionInfo& o : kOptions) {
    SCOPED_TRACE(o.name);
    long old = 0;
    ASSERT_EQ(m_->get_option(o.name, &old), 0);
    EXPECT_GE(old, o.min);
    EXPECT_LE(old, o.max);
    if (getenv(o.env) == nullptr) {
      EXPECT_EQ(old, o.def) << "default of " << o.name << " (no " << o.env << " set)";
    }
    // Out of range: EINVAL and unchanged.
    for (long bad : {o.min - 1, o.max + 1, long(LONG_MIN), long(LONG_MAX)}) {
      if (bad >= o.min && bad <= o.max) continue;
      EXPECT_EQ(m_->set_option(o.name, bad), EINVAL) << "value " << bad;
      long v = 0;
      ASSERT_EQ(m_->get_option(o.name, &v), 0);
      EXPECT_EQ(v, old) << "out-of-range value " << bad << " changed the option";
    }
    // Range ends are accepted (options that change the heap's mode only take the current value).
    bool safe_to_change = strcmp(o.name, "no_memfd") != 0 && strcmp(o.name, "stats") != 0;
    if (safe_to_change) {
      for (long good : {o.min, o.max}) {
        EXPECT_EQ(m_->set_option(o.name, good), 0) << "value " << good;
        long v = 0;
        ASSERT_EQ(m_->get_option(o.name, &v), 0);
        EXPECT_EQ(v, good);
      }
    }
    EXPECT_EQ(m_->set_option(o.name, old), 0);
    long v = 0;
    ASSERT_EQ(m_->get_option(o.name, &v), 0);
    EXPECT_EQ(v, old);
  }
}

TEST_F(MeshExt, OptionsComeFromTheEnvironment) {
  ChildResult r = RunProgram({kHelper, "option", "period_ms"}, 30000, {"MESH_PERIOD_MS=250"});
  ASSERT_TRUE(r.Exited(0)) << r.Describe();
  EXPECT_NE(r.output.find("value=250"), std::string::npos) << r.output;
  ChildResult dirty = RunProgram({kHelper, "option", "max_dirty_mb"}, 30000, {"MESH_MAX_DIRTY_MB=7"});
  ASSERT_TRUE(dirty.Exited(0)) << dirty.Describe();
  EXPECT_NE(dirty.output.find("value=7"), std::string::npos) << dirty.output;
  // Values the option cannot take never stop the program; the option stays within its range.
  for (const char* value : {"not-a-number", "99999999999", "-5", ""}) {
    ChildResult bad = RunProgram({kHelper, "option", "period_ms"}, 30000,
                                 {std::string("MESH_PERIOD_MS=") + value});
    ASSERT_TRUE(bad.Exited(0)) << "MESH_PERIOD_MS=" << value << ": " << bad.Describe();
    long v = -1;
    const char* at = strstr(bad.output.c_str(), "value=");
    ASSERT_NE(at, nullptr) << bad.output;
    v = strtol(at + 6, nullptr, 10);
    EXPECT_GE(v, 0) << "MESH_PERIOD_MS=" << value;
    EXPECT_LE(v, 3600000) << "MESH_PERIOD_MS=" << value;
  }
}

TEST_F(MeshExt, NoMemfdEnvironmentDisablesMemfd) {
  ChildResult r = RunProgram({kHelper, "work"}, 60000, {"MESH_NO_MEMFD=1"});
  ASSERT_TRUE(r.Exited(0)) << r.Describe();
  EXPECT_NE(r.output.find("memfd_backed=0"), std::string::npos) << r.output;
}

// ---- compaction and release --------------------------------------------------------------

TEST_F(MeshExt, CompactKeepsContentsAndCountsMeshes) {
  std::mt19937_64 rng(7);
  std::vector<std::pair<char*, size_t>> all, kept;
  for (int i = 0; i < 100000; ++i) {
    size_t n = (i % 3 == 0) ? 48 : (i % 3 == 1) ? 128 : 512;
    char* p = static_cast<char*>(malloc(n));
    ASSERT_NE(p, nullptr);
    all.emplace_back(p, n);
  }
  for (auto& b : all) {
    if (rng() % 8 == 0) {
      kept.push_back(b);
    } else {
      free(b.first);
    }
  }
  for (size_t i = 0; i < kept.size(); ++i) FillPattern(kept[i].first, kept[i].second, i);
  mesh_stats s0 = Stats();
  size_t meshes = m_->compact();
  mesh_stats s1 = Stats();
  EXPECT_GE(s1.mesh_count, s0.mesh_count + meshes) << "mesh_compact's result not counted";
  if (s1.memfd_backed) {
    EXPECT_GT(meshes, 0u) << "1/8 occupancy in three size classes and not a single mesh";
  }
  for (size_t i = 0; i < kept.size(); ++i) {
    ASSERT_TRUE(CheckPattern(kept[i].first, kept[i].second, i)) << "object " << i << " changed by compaction";
    ASSERT_GE(malloc_usable_size(kept[i].first), kept[i].second);
  }
  for (auto& b : kept) free(b.first);
}

TEST_F(MeshExt, ReleaseFreeMemoryReturnsPages) {
  std::vector<void*> blocks;
  for (int i = 0; i < 32; ++i) {
    void* p = malloc(Opaque(2 * kMiB));
    ASSERT_NE(p, nullptr);
    memset(p, 9, 2 * kMiB);
    blocks.push_back(p);
  }
  size_t peak = CurrentRssBytes();
  for (void* p : blocks) free(p);
  mesh_stats s0 = Stats();
  size_t released = m_->release_free_memory();
  mesh_stats s1 = Stats();
  size_t after = CurrentRssBytes();
  EXPECT_GE(s1.released_bytes, s0.released_bytes + released);
  EXPECT_LT(after + 48 * kMiB, peak) << "RSS " << peak / kMiB << " -> " << after / kMiB << " MiB";
  EXPECT_LE(s1.dirty_bytes, s0.dirty_bytes);
  EXPECT_EQ(s1.dirty_bytes, 0u) << "dirty memory left after mesh_release_free_memory";
}

// ---- freed large blocks kept by the thread ----------------------------------------------

// A freed large block (up to 256 KiB) is kept by its thread and handed out by the next large
// allocation of about its size; the statistics count it freed while it is kept.
TEST_F(MeshExt, FreedLargeBlockIsReusedAndCountedFree) {
  m_->release_free_memory();  // starts with nothing kept
  char* a = static_cast<char*>(malloc(Opaque(64 * 1024)));
  ASSERT_NE(a, nullptr);
  memset(a, 1, 64 * 1024);
  mesh_stats s0 = Stats();
  free(a);
  mesh_stats s1 = Stats();
  EXPECT_EQ(s1.large_bytes + 64 * 1024, s0.large_bytes);
  EXPECT_EQ(s1.bytes_in_use + 64 * 1024, s0.bytes_in_use);
  EXPECT_EQ(s1.frees, s0.frees + 1);
  char* b = static_cast<char*>(malloc(Opaque(60 * 1024)));  // a quarter smaller still fits
  EXPECT_EQ(b, a) << "the kept block was not reused";
  mesh_stats s2 = Stats();
  EXPECT_EQ(s2.large_allocs, s1.large_allocs + 1);
  EXPECT_EQ(s2.large_bytes, s0.large_bytes);
  EXPECT_EQ(s2.allocs, s1.allocs + 1);
  EXPECT_EQ(malloc_usable_size(b), 64u * 1024);
  free(b);
  char* c = static_cast<char*>(malloc(Opaque(40 * 1024)));  // much smaller: a block of its own
  EXPECT_NE(c, a);
  free(c);
}

// At most 1 MiB of freed blocks are kept per thread, none above 256 KiB; trimming returns them.
TEST_F(MeshExt, KeptLargeBlocksAreBoundedAndTrimmed) {
  m_->release_free_memory();
  std::vector<void*> blocks;
  for (int i = 0; i < 8; ++i) {
    blocks.push_back(malloc(Opaque(256 * 1024)));
    ASSERT_NE(blocks.back(), nullptr);
  }
  void* big = malloc(Opaque(512 * 1024));
  ASSERT_NE(big, nullptr);
  mesh_stats s0 = Stats();
  for (void* p : blocks) free(p);
  free(big);
  mesh_stats s1 = Stats();
  EXPECT_LE(s1.arena_bytes + 1536 * 1024, s0.arena_bytes)
      << "more than 1 MiB of freed large blocks still held by the thread";
  m_->release_free_memory();
  mesh_stats s2 = Stats();
  EXPECT_LE(s2.arena_bytes + 2560 * 1024, s0.arena_bytes) << "trim left freed large blocks kept";
}

// A thread's kept blocks go back to the arena when it exits.
TEST_F(MeshExt, ExitingThreadGivesKeptLargeBlocksBack) {
  m_->release_free_memory();
  mesh_stats s0 = Stats();
  std::thread([] {
    for (int i = 0; i < 2; ++i) {
      void* p = malloc(Opaque(256 * 1024));
      memset(p, 3, 256 * 1024);
      void* q = malloc(Opaque(128 * 1024));
      free(p);
      free(q);
    }
  }).join();
  mesh_stats s1 = Stats();
  EXPECT_LE(s1.arena_bytes, s0.arena_bytes + 128 * 1024) << "an exited thread still holds large blocks";
  EXPECT_EQ(s1.large_bytes, s0.large_bytes);
  EXPECT_EQ(s1.large_allocs, s0.large_allocs + 4);
  EXPECT_LE(s1.bytes_in_use, s0.bytes_in_use + 256 * 1024) << "the thread's large blocks still count in use";
}

// A thread whose first call is a free (a consumer of objects other threads allocate) gets a heap
// on that free, so its frees go through its freed stacks like any other thread's.
TEST_F(MeshExt, ThreadThatOnlyFreesGetsAHeap) {
  std::vector<void*> objs;
  for (int i = 0; i < 2000; ++i) objs.push_back(malloc(Opaque(64)));
  mesh_stats s0 = Stats();
  std::atomic<int> state{0};
  std::thread consumer([&] {
    for (void* p : objs) free(p);
    state.store(1);
    while (state.load() != 2) std::this_thread::yield();
  });
  while (state.load() != 1) std::this_thread::yield();
  mesh_stats s1 = Stats();
  state.store(2);
  consumer.join();
  EXPECT_EQ(s1.thread_heaps, s0.thread_heaps + 1) << "the freeing thread has no heap";
  EXPECT_GE(s1.frees, s0.frees + 2000);
  EXPECT_LE(s1.bytes_in_use + 2000 * 64, s0.bytes_in_use + 4096);  // (pthread key storage)
}

}  // namespace
}  // namespace mesh_api_test
