// MappingBudget: how many more mappings meshing may add before the process nears
// vm.max_map_count.
//
// Every mesh splits mappings (a span's range mapped onto the memory file), and a process that
// runs out of mappings fails its next mmap or mprotect, which would be the application's. So
// meshing keeps a reserve below the limit for the application. Counting /proc/self/maps is
// expensive (about 0.7 us per mapping), so the budget works on an estimate: the last count plus
// what each mesh may have added since (an overestimate: the kernel merges many). When the
// estimate passes the soft limit (limit - reserve) a new count starts, spread over the calls
// that follow, at most kCountBytesPerCall of the file each (about 1 ms). Meshing goes on
// meanwhile while the estimate stays below the hard limit (limit - reserve / 2).
//
// Not thread-safe: the mesher calls everything but setMaxMapCount with its lock held, and never
// under a class lock (a count step reads the file).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "platform/os.h"

namespace mesh {

class MappingBudget {
 public:
  // Mappings one mesh can add: mapping src's range onto the file splits its mapping in up to
  // three, and so does moving an anonymous dst into the file (adjacent file-backed spans at
  // contiguous offsets merge, so the real count is often lower).
  static constexpr long kMappingsPerMesh = 4;

  // The limit to keep below; 0: vm.max_map_count. Any thread, no lock needed.
  void setMaxMapCount(long limit) { maxMapCountOverride_.store(limit, std::memory_order_relaxed); }
  // Whether a mesh may be made now. Moves a count in progress along, or starts one when the
  // estimate nears the limit.
  bool allowsMesh();
  // Whether the estimate leaves room for this many more mappings (no counting).
  bool roomFor(long mappings) const {
    return measured_ >= 0 && measured_ + addedSince_ + mappings <= hardLimit_;
  }
  // A mesh (or a move into the file) may have added this many mappings.
  void noteAdded(long mappings) { addedSince_ += mappings; }
  // The estimate (0 before the first count) and the limit, for the statistics.
  uint64_t estimate() const {
    return measured_ < 0 ? 0 : static_cast<uint64_t>(measured_ + addedSince_);
  }
  uint64_t limit() const { return static_cast<uint64_t>(limit_); }
  // fork child: a count in progress was reading the parent's mappings.
  void resetAfterForkInChild() { counter_.reset(); }

 private:
  static constexpr size_t kCountBytesPerCall = 96 * 1024;
  void refreshLimits();

  static constexpr uint64_t kLimitRereadNs = 1000000000;
  std::atomic<long> maxMapCountOverride_{0};
  long systemLimit_ = 0;  // vm.max_map_count as last read
  uint64_t systemLimitReadNs_ = 0;
  long limit_ = 0;
  long softLimit_ = 0;   // beyond this estimate: count again
  long hardLimit_ = 0;   // beyond this estimate: no meshing
  long measured_ = -1;   // /proc/self/maps lines at the last count
  long addedSince_ = 0;  // mappings meshes may have added since
  long addedAtCountStart_ = 0;
  os::MapsCounter counter_;  // a count in progress
};

}  // namespace mesh
