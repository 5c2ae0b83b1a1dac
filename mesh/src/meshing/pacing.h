// How long a round of the background thread meshes (contract G35 in docs/behaviour.md). A pure
// function of what the round sees, so that the rule is tested apart from the thread and the clock.
//
// A round meshes in proportion to what can be won: all of its period once kFullPaceGainBytes or
// more can be won, a share of the period for a smaller gain, never less than a twentieth. While
// the program keeps a CPU busy (half a core or more since the last round, our own threads not
// counted), half of that: each mesh interrupts the CPUs that run the program's threads to flush
// their TLBs, so a busy program pays for the meshing in throughput, while one that mostly waits
// (a lightly loaded server) does not. A program that has stopped using the heap's slow paths
// gets the whole period whatever the gain.
#pragma once

#include <cstdint>

namespace mesh::pacing {

inline constexpr uint64_t kFullPaceGainBytes = uint64_t{16} << 20;
inline constexpr uint64_t kMaxRoundNs = 500'000'000;  // a long MESH_PERIOD_MS still yields between rounds

struct Round {
  uint64_t periodNs;   // MESH_PERIOD_MS
  uint64_t gainBytes;  // Mesher::meshGainBytes(): free space in the classes worth a step
  bool quiet;          // no span refill and no slow free since the previous round
  bool busy;           // the program used half a core or more since the previous round
};

// Readings of three clocks, in nanoseconds: wall time, the whole process's CPU time, and the CPU
// time of libmesh's own threads (the background thread and the write-protection service).
struct Clocks {
  uint64_t wall;
  uint64_t process;
  uint64_t ours;
};

// Round::busy: whether the program's own threads used half a core or more between two readings.
// Our figure can go back (the service thread restarted and counts from 0 again): then what it
// reads now is all ours since the earlier reading.
constexpr bool programBusy(const Clocks& before, const Clocks& now) {
  uint64_t ours = now.ours >= before.ours ? now.ours - before.ours : now.ours;
  uint64_t used = now.process - before.process;
  uint64_t program = used > ours ? used - ours : 0;
  return 2 * program >= now.wall - before.wall;
}

constexpr uint64_t roundBudgetNs(const Round& r) {
  if (r.periodNs == 0 || r.gainBytes == 0) return 0;
  uint64_t budget = r.periodNs;
  if (!r.quiet) {
    // (gainBytes < kFullPaceGainBytes in the product: it stays far below 2^64.)
    if (r.gainBytes < kFullPaceGainBytes) budget = r.periodNs * (r.gainBytes >> 10) / (kFullPaceGainBytes >> 10);
    if (r.busy) budget /= 2;
    if (budget < r.periodNs / 20) budget = r.periodNs / 20;
  }
  return budget < kMaxRoundNs ? budget : kMaxRoundNs;
}

}  // namespace mesh::pacing
