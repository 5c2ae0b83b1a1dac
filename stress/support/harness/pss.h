// Figures of /proc/self/smaps_rollup (Pss, Rss, Pss_Anon, ...), in KiB: how much memory the
// process really costs, which the tests and benchmarks compare before and after compaction.
//
// Reading never allocates (a stack buffer and read(2)): the programs measure the heap they run
// on, may be idling in a state where malloc must not be called, and run under any allocator.
// This is the harness's own reader; libmesh's platform layer has its own and is not used, so the
// programs need nothing from inside the library.
#ifndef MESH_HARNESS_PSS_H
#define MESH_HARNESS_PSS_H

namespace harness {

// One reading of /proc/self/smaps_rollup, so that several figures come from the same moment.
class SmapsRollup {
 public:
  SmapsRollup();  // reads the file

  bool valid() const { return valid_; }
  // The number of the line "Key:   N kB"; -1 when the file could not be read or has no such line.
  long kib(const char* key) const;

 private:
  char text_[4096];
  bool valid_ = false;
};

// One figure, read now: "Key:   N kB" -> N; -1 when unavailable.
long smaps_rollup_kib(const char* key);

// The process's Pss in KiB; -1 when unavailable.
inline long pss_kib() { return smaps_rollup_kib("Pss"); }

// Pss of the anonymous and shmem/memfd pages (Pss_Anon + Pss_Shmem), leaving out file pages,
// whose share changes whenever another process mapping the same libraries starts or exits.
// Falls back to the whole Pss on kernels without the split (before 5.13); -1 when unavailable.
long anon_pss_kib();

}  // namespace harness

#endif  // MESH_HARNESS_PSS_H
