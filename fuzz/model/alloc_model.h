// The allocation model: runs a sequence of Ops (ops.h) on an Executor and checks, after every
// operation, what any correct malloc must guarantee:
//   - a successful allocation is aligned (16 bytes from 16 bytes up, 8 below; the requested
//     alignment for aligned requests) and its usable size is at least the request;
//   - the usable ranges of live objects never overlap;
//   - every object holds the byte pattern derived from its id: checked before it is freed,
//     reallocated or handed to the other thread (which checks it again), for the realloc'd
//     object and its address neighbours after a realloc, for the neighbours after a hand-off,
//     for every object after a compaction and every Limits::fullCheckEvery operations, and once
//     more at the end (objects above 64 KiB: the first and last 128 bytes of 4 KiB blocks, see
//     forEachCheckedRange);
//   - calloc memory reads as zero; realloc keeps the first min(old, new) bytes;
//   - usable_size is stable for a live object;
//   - impossible requests return NULL (errno ENOMEM where the executor has errno) and a failed
//     realloc leaves the object intact;
//   - once everything is freed, the executor's heap holds no memory for objects.
//
// The shadow state is a vector of live objects (operations pick targets by index) and a map from
// address to the end of the usable range (the overlap check). Each live object is filled over
// its whole usable size, so a neighbour that writes all of its own usable size would show up.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "model/ops.h"

namespace mesh::model {

// The heap the model runs on. The allocation calls act for the calling thread: the model's own
// thread, or the other thread inside onOtherThread().
class Executor {
 public:
  virtual ~Executor() = default;
  virtual const char* name() const = 0;

  virtual void* allocate(size_t n) = 0;
  // align: a power of two from 16 to 64 KiB.
  virtual void* allocateAligned(size_t n, size_t align) = 0;
  virtual void* allocateZeroed(size_t count, size_t size) = 0;
  // realloc semantics: NULL p allocates, n == 0 frees and returns NULL.
  virtual void* reallocate(void* p, size_t n) = 0;
  virtual void release(void* p) = 0;
  virtual size_t usableSize(void* p) = 0;

  // A forced compaction (mesh pass). detachFirst: the thread heaps give their spans back first,
  // which makes them candidates. Returns the meshes made, 0 when unknown.
  virtual size_t compact(bool detachFirst) = 0;
  // Runs fn on the other thread (started on first use) and waits for it.
  virtual void onOtherThread(const std::function<void()>& fn) = 0;
  // The other thread exits with its objects still live; the next onOtherThread starts a new one.
  virtual void retireOtherThread() = 0;

  // Whether NULL for an n-byte request may be legitimate (the heap is close to full).
  virtual bool mayRunOutOfMemory(size_t n) = 0;
  // Whether failed allocations set errno to ENOMEM (the C API does).
  virtual bool setsErrno() const = 0;
  // Called when the model holds no objects any more: "" when the heap keeps no memory for
  // objects, else a description of what it still holds.
  virtual std::string checkEmpty() = 0;
};

struct Limits {
  size_t maxLiveBytes = size_t{48} << 20;  // allocations beyond this are skipped
  size_t maxLiveObjects = 20000;
  uint32_t fullCheckEvery = 64;  // operations between full content checks (0: never)
};

struct RunStats {
  uint64_t executed[kOpKindCount] = {};
  uint64_t skipped = 0;         // over the limits, or no target
  uint64_t outOfMemory = 0;     // NULL where the executor allowed it
  uint64_t meshes = 0;          // reported by compactions
  uint64_t maxLiveObjects = 0;
  uint64_t maxLiveBytes = 0;
};

class Model {
 public:
  explicit Model(Executor& ex, Limits limits = {});
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;
  // Frees whatever is still live, unless a violation was seen (then the objects are leaked: the
  // heap can no longer be trusted).
  ~Model();

  // Applies one operation; "" or a description of the first broken invariant. After a violation
  // every further call returns it again without doing anything.
  std::string apply(const Op& op);
  // Applies ops in order, checks every object and frees everything (then checkEmpty). Returns
  // "" or "op N <op>: <what broke>".
  std::string run(const std::vector<Op>& ops);
  // Checks the contents of every live object.
  std::string checkAll();
  // Frees every live object, then asks the executor whether its heap is empty.
  std::string releaseAll();

  size_t liveCount() const { return live_.size(); }
  void* liveAddress(size_t index) const { return live_[index].p; }
  const RunStats& stats() const { return stats_; }
  bool failed() const { return !violation_.empty(); }

 private:
  struct Object {
    char* p;
    size_t requested;
    size_t usable;
    uint64_t id;
  };

  std::string applyChecked(const Op& op);
  std::string allocateOne(OpKind kind, size_t n, size_t align, uint8_t arg);
  std::string admit(char* p, size_t n, size_t minAlign, const char* what, bool zeroed,
                    uint64_t prefilledId);
  std::string reallocOne(size_t index, size_t n);
  std::string freeOne(size_t index, const char* what);
  std::string handOff(size_t index);
  std::string remoteAlloc(size_t n);
  std::string oversize(uint8_t variant, uint16_t target);
  std::string freeEvery(uint8_t arg, uint16_t target);
  std::string compact(bool detachFirst);
  std::string checkObject(const Object& o, size_t bytes, const char* when) const;
  std::string checkNeighbours(uintptr_t addr, const char* when) const;
  std::string overlapWith(uintptr_t begin, uintptr_t end) const;
  std::string describeObject(const Object& o) const;
  bool fits(size_t n) const;
  void insert(const Object& o);
  void removeAt(size_t index);

  Executor& ex_;
  Limits limits_;
  RunStats stats_;
  std::vector<Object> live_;
  struct Range {
    uintptr_t end;
    uint64_t id;
  };
  std::map<uintptr_t, Range> ranges_;  // usable range start -> (end, id)
  size_t liveBytes_ = 0;
  uint64_t nextId_ = 1;
  uint64_t opsSinceFullCheck_ = 0;
  std::string violation_;
};

// The pattern of object `id` over bytes [from, to) of p (whose byte 0 is the object's first).
void fillPattern(char* p, size_t from, size_t to, uint64_t id);
// Offset of the first byte in [from, to) that differs from the pattern, or SIZE_MAX.
size_t findPatternMismatch(const char* p, size_t from, size_t to, uint64_t id);

}  // namespace mesh::model
