// First test of every API test executable: proves which allocator the process really uses, so
// a link mistake never lets the suite silently test glibc.
#include <dlfcn.h>
#include <gtest/gtest.h>
#include <malloc.h>

#include <cstdlib>
#include <cstring>
#include <string>

#include "api_test_util.h"

namespace mesh_api_test {
namespace {

std::string ObjectDefining(const char* symbol) {
  void* addr = dlsym(RTLD_DEFAULT, symbol);
  if (!addr) return "<unresolved>";
  Dl_info info;
  if (!dladdr(addr, &info) || !info.dli_fname) return "<unknown object>";
  return info.dli_fname;
}

TEST(ApiLinkage, ProcessAllocatorIsTheExpectedOne) {
  if (!kExpectLibmesh) {
    // glibc build: libmesh must *not* be loaded, or the "glibc" results would be misleading.
    EXPECT_EQ(Mesh(), nullptr) << "built against glibc but mesh_get_stats resolves";
    EXPECT_EQ(ObjectDefining("malloc").find("libmesh"), std::string::npos);
    GTEST_SKIP() << "running against glibc (MESH_API_TESTS_AGAINST_GLIBC): libmesh checks skip";
  }
  ASSERT_NE(Mesh(), nullptr) << "mesh_get_stats is not resolvable: libmesh is not loaded";
  EXPECT_NE(ObjectDefining("malloc").find("libmesh"), std::string::npos)
      << "malloc resolves to " << ObjectDefining("malloc");
  EXPECT_NE(ObjectDefining("_Znwm").find("libmesh"), std::string::npos)
      << "operator new resolves to " << ObjectDefining("_Znwm");

  mesh_stats before{}, after{};
  ASSERT_EQ(Mesh()->get_stats(&before), 0);
  void* ptrs[10];
  for (void*& p : ptrs) {
    p = malloc(Opaque(40));
    ASSERT_NE(p, nullptr);
    Sink(p);
  }
  ASSERT_EQ(Mesh()->get_stats(&after), 0);
  EXPECT_GE(after.allocs, before.allocs + 10) << "malloc did not reach libmesh";
  for (void* p : ptrs) free(p);
  mesh_stats freed{};
  ASSERT_EQ(Mesh()->get_stats(&freed), 0);
  EXPECT_GE(freed.frees, after.frees + 10) << "free did not reach libmesh";
}

}  // namespace
}  // namespace mesh_api_test
