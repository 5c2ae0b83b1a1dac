#include "meshing/mapping_budget.h"

namespace mesh {

void MappingBudget::refreshLimits() {
  long limit = maxMapCountOverride_.load(std::memory_order_relaxed);
  if (limit <= 0) {
    // The system's limit rarely changes: read at most once a second (it was read for every
    // mesh step, three system calls each).
    uint64_t now = os::monotonicNs();
    if (systemLimit_ <= 0 || now - systemLimitReadNs_ >= kLimitRereadNs) {
      systemLimit_ = os::readLongFile("/proc/sys/vm/max_map_count", 65530);
      systemLimitReadNs_ = now;
    }
    limit = systemLimit_;
  }
  limit_ = limit;
  long reserve = limit / 8 > 1024 ? limit / 8 : (limit > 2048 ? 1024 : limit / 2);
  softLimit_ = limit - reserve;
  hardLimit_ = limit - reserve / 2;
}

bool MappingBudget::allowsMesh() {
  refreshLimits();
  if (measured_ < 0 || counter_.inProgress() ||
      measured_ + addedSince_ + kMappingsPerMesh > softLimit_) {
    if (!counter_.inProgress()) addedAtCountStart_ = addedSince_;
    long count;
    if (counter_.step(kCountBytesPerCall, &count)) {
      if (count < 0) return false;
      measured_ = count;
      // Mappings added while the file was read may be in the count or not: keep them.
      addedSince_ -= addedAtCountStart_;
    }
  }
  return roomFor(kMappingsPerMesh);
}

}  // namespace mesh
