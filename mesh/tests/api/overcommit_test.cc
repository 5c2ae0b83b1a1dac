// Memory limits (docs/host-contract.md, section 3): strict overcommit and RLIMIT_AS. These tests
// change vm.overcommit_memory, which is machine-wide: ctest runs them alone (RUN_SERIAL), and
// each restores the setting it found whatever happens in between. They need root (CI runs as
// root); without it they skip.
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "api_test_util.h"

namespace mesh_api_test {
namespace {

const std::string kHelper = MESH_API_HELPER_PATH;
const char* kOvercommit = "/proc/sys/vm/overcommit_memory";

long ReadOvercommit() {
  FILE* f = fopen(kOvercommit, "r");
  long v = -1;
  if (f != nullptr) {
    if (fscanf(f, "%ld", &v) != 1) v = -1;
    fclose(f);
  }
  return v;
}

bool WriteOvercommit(long v) {
  FILE* f = fopen(kOvercommit, "w");
  if (f == nullptr) return false;
  bool ok = fprintf(f, "%ld\n", v) > 0;
  return fclose(f) == 0 && ok;
}

// Sets vm.overcommit_memory for the life of the object and restores it after.
class StrictOvercommit {
 public:
  StrictOvercommit() : old_(ReadOvercommit()) { active_ = old_ >= 0 && WriteOvercommit(2); }
  ~StrictOvercommit() {
    if (active_) WriteOvercommit(old_);
  }
  bool active() const { return active_; }

 private:
  long old_;
  bool active_ = false;
};

long Field(const std::string& out, const std::string& key) {
  size_t at = out.find(key + "=");
  return at == std::string::npos ? -1 : atol(out.c_str() + at + key.size() + 1);
}

// Under vm.overcommit_memory=2 the kernel charges every private writable page a process maps.
// A heap must be charged for what it uses, not for the address space it reserved: before the fix
// each libmesh process was charged for its whole (multi-GiB) reservation, so one idle process
// could make another's allocation, or a preloaded shell's fork, fail. The helper uses 512 MiB at
// its peak, frees it, forks, and reports what it is charged for then.
TEST(Limits, H4_StrictOvercommitChargesWhatTheHeapUses) {
  StrictOvercommit strict;
  if (!strict.active()) GTEST_SKIP() << "cannot set " << kOvercommit << " (needs root)";
  ChildResult r = RunProgram({kHelper, "commit"}, 120000);
  ASSERT_TRUE(r.Exited(0)) << r.Describe();
  long peak = Field(r.output, "commit_peak_kib"), after = Field(r.output, "commit_kib");
  ASSERT_GT(peak, 0) << r.output;
  EXPECT_GE(peak, 512 * 1024) << "the blocks in use must be charged: " << r.output;
  EXPECT_LT(peak, 768 * 1024) << "charged far beyond the 512 MiB in use: " << r.output;
  if (HaveLibmesh()) {
    EXPECT_LT(after, 128 * 1024) << "freed blocks must not stay charged: " << r.output;
  }
}

// Under an address-space limit (ulimit -v) the heap grows in pieces, so it can use nearly all
// of the limit, as glibc's can (before the fix its one reservation was halved until it fitted:
// half the limit at most).
TEST(Limits, H5_HeapUsesMostOfAnAddressSpaceLimit) {
  ChildResult r = RunProgram({kHelper, "exhaust"}, 120000, {}, [] {
    rlimit lim{rlim_t(3) << 30, rlim_t(3) << 30};
    setrlimit(RLIMIT_AS, &lim);
  });
  ASSERT_TRUE(r.Exited(0)) << r.Describe();
  long mib = Field(r.output, "exhaust_mib");
  EXPECT_GT(mib, 2300) << "of a 3072 MiB address-space limit: " << r.output;
}

// The heap has no fixed 64 GiB ceiling any more: it grows in pieces up to MESH_ARENA_GB (1 TiB by
// default). 100 blocks of 1 GiB, two pages of each touched (so little memory is used).
TEST(Limits, H6_HeapGrowsPastItsFirstReservation) {
  ChildResult r = RunInChild(
      [] {
        static void* blocks[100];
        for (int i = 0; i < 100; ++i) {
          blocks[i] = malloc(Opaque(size_t{1} << 30));
          if (blocks[i] == nullptr) {
            fprintf(stderr, "malloc(1 GiB) #%d failed\n", i);
            return 2;
          }
          static_cast<char*>(blocks[i])[0] = 1;
          static_cast<char*>(blocks[i])[(size_t{1} << 30) - 1] = 2;
        }
        for (int i = 0; i < 100; ++i) {
          if (static_cast<char*>(blocks[i])[0] != 1) return 3;
          free(blocks[i]);
        }
        return 0;
      },
      120000);
  EXPECT_TRUE(r.Exited(0)) << r.Describe();
}

}  // namespace
}  // namespace mesh_api_test
