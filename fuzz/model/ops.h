// Operations of the allocation model, shared by the rapidcheck properties (property_tests/) and
// the libFuzzer harness (fuzz/). An operation names *what* to do; the Model (alloc_model.h)
// decides which live object it applies to and checks the result; an Executor performs it on
// a heap.
//
// Every sequence of operations is valid: an operation that refers to an object picks it as
// `target % live objects`, and does nothing when there is none. That keeps shrinking simple
// (dropping any operation leaves a valid sequence) and lets the fuzzer feed arbitrary bytes.
//
// Byte encoding (what the fuzzer reads; encodeOps writes it, decodeOps reads it back):
//   input  := flags:u8 op*            (bit 0: anonymous arena instead of memfd; bits 1-7: the
//                                      thread heaps' shuffling seed)
//   op     := kind:u8 operands        (kind taken modulo kOpKindCount; see kOperandBytes)
//   size   := selector:u8 value:u24   (see decodeSize; selector 7 is an exact byte count)
//   target := u16, little-endian
// Missing bytes at the end read as zero, so every byte string decodes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace mesh::model {

enum class OpKind : uint8_t {
  kMalloc,        // malloc(size)
  kAligned,       // an aligned allocation: size bytes aligned to 1 << alignLog2 (16 .. 64 KiB)
  kCalloc,        // calloc(count, size / count), count = 1 + arg % 8 (product <= size)
  kRealloc,       // realloc(target, size); size 0 frees and returns NULL
  kFree,          // free(target)
  kUsableSize,    // malloc_usable_size(target)
  kCompact,       // force a compaction (mesh pass); arg bit 0: thread heaps detach first
  kHandOff,       // another thread checks and frees target
  kRemoteAlloc,   // another thread allocates size bytes and hands the object to us
  kRetireThread,  // the other thread exits with its objects still live (they stay in the model)
  kOversize,      // a request that cannot be met (arg picks which); must fail cleanly
  kAllocMany,     // 1 + arg % 128 allocations of size bytes
  kFreeEvery,     // free each live object whose index % (2 + arg % 15) == target % stride
  kCount
};

inline constexpr int kOpKindCount = static_cast<int>(OpKind::kCount);

// The largest size an operation asks for (large objects "up to a few MiB").
inline constexpr uint32_t kMaxOpSize = 4u << 20;
inline constexpr uint8_t kMinAlignLog2 = 4;   // 16 bytes
inline constexpr uint8_t kMaxAlignLog2 = 16;  // 64 KiB

struct Op {
  OpKind kind = OpKind::kMalloc;
  uint32_t size = 0;       // bytes (<= kMaxOpSize)
  uint8_t alignLog2 = kMinAlignLog2;
  uint8_t arg = 0;         // kind-specific small operand (see OpKind)
  uint16_t target = 0;     // which live object: target % live count

  bool operator==(const Op&) const = default;
};

const char* opName(OpKind kind);
// One line, e.g. "realloc(#3, 70000)"; used in failure reports and rapidcheck counterexamples.
std::string describe(const Op& op);
std::string describe(const std::vector<Op>& ops);

// Input flags (first byte of a fuzzer input).
struct InputFlags {
  bool anonymousArena = false;
  uint8_t seed = 0;  // 0..127

  bool operator==(const InputFlags&) const = default;
};

// Size from a (selector, 24-bit value) pair: ranges that cover tiny objects, every size class
// and its neighbours, large objects and page multiples. Always <= kMaxOpSize.
uint32_t decodeSize(uint8_t selector, uint32_t value24);

struct DecodedInput {
  InputFlags flags;
  std::vector<Op> ops;
};
// At most maxOps operations are decoded (the rest of the input is ignored).
DecodedInput decodeOps(const uint8_t* data, size_t size, size_t maxOps = 2000);
// Exact inverse for any op whose fields are in range: decodeOps(encodeOps(f, ops)).ops == ops.
std::vector<uint8_t> encodeOps(const InputFlags& flags, const std::vector<Op>& ops);

// Brings an op's fields into the ranges the encoding represents exactly (size <= kMaxOpSize,
// alignLog2 in [kMinAlignLog2, kMaxAlignLog2]).
Op normalized(Op op);

}  // namespace mesh::model
