// docs/behaviour.md E23: allocation before main (constructors, dlopen/dlsym), in thread-local and
// pthread-key destructors, and in atexit handlers.
#include <dlfcn.h>
#include <gtest/gtest.h>
#include <malloc.h>
#include <pthread.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "api_test_util.h"

extern "C" int mesh_api_ctorlib_check();

namespace mesh_api_test {
namespace {

// ---- allocation in the executable's earliest constructor ---------------------------------

struct EarlyResults {
  char* plain = nullptr;
  char* zeroed = nullptr;
  char* grown = nullptr;
  void* libm = nullptr;
  double sqrt_four = -1;
  bool dlerror_seen = false;
  char* dlerror_copy = nullptr;
  std::string* text = nullptr;
};
EarlyResults g_early;

__attribute__((constructor(101))) void EarliestConstructor() {
  g_early.plain = static_cast<char*>(malloc(5000));
  if (g_early.plain) memset(g_early.plain, 0x17, 5000);
  g_early.zeroed = static_cast<char*>(calloc(1, 70000));
  g_early.grown = static_cast<char*>(realloc(nullptr, 10));
  if (g_early.grown) {
    memcpy(g_early.grown, "012345678", 10);
    g_early.grown = static_cast<char*>(realloc(g_early.grown, 300000));
  }
  g_early.dlerror_seen = dlsym(RTLD_DEFAULT, "mesh_api_missing_symbol_early") == nullptr;
  if (const char* e = dlerror()) g_early.dlerror_copy = strdup(e);
  g_early.libm = dlopen("libm.so.6", RTLD_NOW);
  if (g_early.libm) {
    auto fn = reinterpret_cast<double (*)(double)>(dlsym(g_early.libm, "sqrt"));
    if (fn) g_early.sqrt_four = fn(4.0);
  }
  g_early.text = new std::string("constructed before main, long enough to need the heap");
}

TEST(Startup, E23_AllocationInExecutableConstructor) {
  ASSERT_NE(g_early.plain, nullptr);
  for (int i = 0; i < 5000; ++i) ASSERT_EQ(g_early.plain[i], 0x17);
  ASSERT_NE(g_early.zeroed, nullptr);
  EXPECT_TRUE(AllBytesAre(g_early.zeroed, 70000, 0));
  ASSERT_NE(g_early.grown, nullptr);
  EXPECT_STREQ(g_early.grown, "012345678");
  EXPECT_GE(malloc_usable_size(g_early.grown), 300000u);
  EXPECT_TRUE(g_early.dlerror_seen);
  ASSERT_NE(g_early.dlerror_copy, nullptr) << "dlerror() after a failed dlsym in a constructor";
  EXPECT_NE(strstr(g_early.dlerror_copy, "mesh_api_missing_symbol_early"), nullptr);
  ASSERT_NE(g_early.libm, nullptr) << "dlopen(libm.so.6) in a constructor failed";
  EXPECT_EQ(g_early.sqrt_four, 2.0);
  ASSERT_NE(g_early.text, nullptr);
  EXPECT_EQ(*g_early.text, "constructed before main, long enough to need the heap");
  // All of it is freeable now that main runs.
  free(g_early.plain);
  free(g_early.zeroed);
  free(g_early.grown);
  free(g_early.dlerror_copy);
  delete g_early.text;
  EXPECT_EQ(dlclose(g_early.libm), 0);
  g_early = EarlyResults();
}

TEST(Startup, E23_AllocationInSharedLibraryConstructor) {
  EXPECT_EQ(mesh_api_ctorlib_check(), 0)
      << "see mesh_api_ctorlib_check in ctor_lib.cc for the failing step";
}

// ---- thread_local destructors ------------------------------------------------------------

std::atomic<int> g_tls_destructors{0};
std::atomic<int> g_tls_errors{0};

struct TlsHolder {
  std::vector<void*> blocks;
  ~TlsHolder() {
    for (size_t i = 0; i < blocks.size(); ++i) {
      if (!CheckPattern(blocks[i], 200, i)) g_tls_errors.fetch_add(1);
      free(blocks[i]);
    }
    // Allocate afresh during thread teardown (the allocator's own per-thread state may already
    // be gone).
    std::vector<char*> late;
    for (int i = 0; i < 100; ++i) {
      char* p = static_cast<char*>(malloc(size_t(64 + i * 10)));
      if (!p) {
        g_tls_errors.fetch_add(1);
        continue;
      }
      memset(p, 0x3e, size_t(64 + i * 10));
      late.push_back(p);
    }
    for (char* p : late) free(p);
    g_tls_destructors.fetch_add(1);
  }
};
thread_local TlsHolder t_holder;

TEST(Startup, E23_ThreadLocalDestructorsAllocateAndFree) {
  constexpr int kThreads = 32;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([] {
      for (size_t i = 0; i < 50; ++i) {
        void* p = malloc(200);
        FillPattern(p, 200, i);
        t_holder.blocks.push_back(p);
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(g_tls_destructors.load(), kThreads);
  EXPECT_EQ(g_tls_errors.load(), 0);
}

// ---- pthread key destructors -------------------------------------------------------------

std::atomic<int> g_key_calls{0};
std::atomic<int> g_key_errors{0};
pthread_key_t g_key;

struct KeyValue {
  int round;
  char payload[240];
};

void KeyDestructor(void* value) {
  auto* v = static_cast<KeyValue*>(value);
  g_key_calls.fetch_add(1);
  if (!AllBytesAre(v->payload, sizeof v->payload, static_cast<unsigned char>(v->round))) g_key_errors.fetch_add(1);
  int round = v->round;
  free(v);
  if (round < 2) {  // set a new value: the destructor runs again in the next iteration
    auto* next = static_cast<KeyValue*>(malloc(sizeof(KeyValue)));
    if (!next) {
      g_key_errors.fetch_add(1);
      return;
    }
    next->round = round + 1;
    memset(next->payload, round + 1, sizeof next->payload);
    pthread_setspecific(g_key, next);
  }
}

TEST(Startup, E23_PthreadKeyDestructorsAllocateAndFree) {
  ASSERT_EQ(pthread_key_create(&g_key, KeyDestructor), 0);
  constexpr int kThreads = 16;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([] {
      auto* v = static_cast<KeyValue*>(malloc(sizeof(KeyValue)));
      v->round = 0;
      memset(v->payload, 0, sizeof v->payload);
      pthread_setspecific(g_key, v);
      void* scratch = malloc(100000);  // some other state of the thread
      Sink(scratch);
      free(scratch);
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(g_key_calls.load(), kThreads * 3);
  EXPECT_EQ(g_key_errors.load(), 0);
  pthread_key_delete(g_key);
}

// ---- atexit handlers ---------------------------------------------------------------------

void* g_freed_at_exit = nullptr;

void AtexitHandler() {
  std::vector<char*> blocks;
  for (int i = 0; i < 1000; ++i) {
    char* p = static_cast<char*>(malloc(size_t(16 + i)));
    if (!p) {
      fprintf(stderr, "ATEXIT_MALLOC_FAILED\n");
      return;
    }
    memset(p, i & 0xff, size_t(16 + i));
    blocks.push_back(p);
  }
  for (int i = 0; i < 1000; ++i) {
    if (!AllBytesAre(blocks[size_t(i)], size_t(16 + i), static_cast<unsigned char>(i))) {
      fprintf(stderr, "ATEXIT_CORRUPT\n");
      return;
    }
    free(blocks[size_t(i)]);
  }
  free(g_freed_at_exit);
  Sink(malloc(12345));  // leaked on purpose at exit
  fprintf(stderr, "ATEXIT_OK\n");
}

struct MainThreadTls {
  bool used = false;
  ~MainThreadTls() {
    if (!used) return;
    char* p = static_cast<char*>(malloc(4000));
    if (p) {
      memset(p, 1, 4000);
      free(p);
      fprintf(stderr, "TLS_MAIN_OK\n");
    }
  }
};
thread_local MainThreadTls t_main_tls;

TEST(Startup, E23_AtexitHandlerAndExitTimeTlsAllocate) {
  ChildResult r = RunInChild(
      [] {
        g_freed_at_exit = malloc(777);
        t_main_tls.used = true;
        atexit(AtexitHandler);
        exit(0);  // runs TLS destructors, atexit handlers and every static destructor
        return 1;
      },
      30000);
  EXPECT_TRUE(r.Exited(0)) << r.Describe();
  EXPECT_NE(r.output.find("ATEXIT_OK"), std::string::npos) << r.Describe();
  EXPECT_NE(r.output.find("TLS_MAIN_OK"), std::string::npos) << r.Describe();
}

}  // namespace
}  // namespace mesh_api_test
