#include "model/ops.h"

#include <cstdio>

#include "miniheap/size_classes.h"

namespace mesh::model {
namespace {

// Which operands follow the kind byte, in this order.
struct Layout {
  bool align;   // u8: alignLog2 - kMinAlignLog2 (mod 13)
  bool arg;     // u8
  bool target;  // u16
  bool size;    // u8 selector + u24 value
};

Layout layoutOf(OpKind kind) {
  switch (kind) {
    case OpKind::kMalloc: return {false, false, false, true};
    case OpKind::kAligned: return {true, false, false, true};
    case OpKind::kCalloc: return {false, true, false, true};
    case OpKind::kRealloc: return {false, false, true, true};
    case OpKind::kFree: return {false, false, true, false};
    case OpKind::kUsableSize: return {false, false, true, false};
    case OpKind::kCompact: return {false, true, false, false};
    case OpKind::kHandOff: return {false, false, true, false};
    case OpKind::kRemoteAlloc: return {false, false, false, true};
    case OpKind::kRetireThread: return {false, false, false, false};
    case OpKind::kOversize: return {false, true, false, false};
    case OpKind::kAllocMany: return {false, true, false, true};
    case OpKind::kFreeEvery: return {false, true, true, false};
    case OpKind::kCount: break;
  }
  return {false, false, false, false};
}

constexpr uint32_t kAlignChoices = kMaxAlignLog2 - kMinAlignLog2 + 1;
constexpr uint8_t kExactSizeSelector = 7;

// Reads bytes front to back; past the end every read is zero.
class ByteReader {
 public:
  ByteReader(const uint8_t* data, size_t size) : data_(data), size_(size) {}
  bool done() const { return pos_ >= size_; }
  uint8_t u8() { return pos_ < size_ ? data_[pos_++] : 0; }
  uint16_t u16() {
    uint16_t lo = u8();
    return static_cast<uint16_t>(lo | (u8() << 8));
  }
  uint32_t u24() {
    uint32_t v = u16();
    return v | (static_cast<uint32_t>(u8()) << 16);
  }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
};

}  // namespace

const char* opName(OpKind kind) {
  switch (kind) {
    case OpKind::kMalloc: return "malloc";
    case OpKind::kAligned: return "aligned";
    case OpKind::kCalloc: return "calloc";
    case OpKind::kRealloc: return "realloc";
    case OpKind::kFree: return "free";
    case OpKind::kUsableSize: return "usable_size";
    case OpKind::kCompact: return "compact";
    case OpKind::kHandOff: return "hand_off";
    case OpKind::kRemoteAlloc: return "remote_alloc";
    case OpKind::kRetireThread: return "retire_thread";
    case OpKind::kOversize: return "oversize";
    case OpKind::kAllocMany: return "alloc_many";
    case OpKind::kFreeEvery: return "free_every";
    case OpKind::kCount: break;
  }
  return "?";
}

std::string describe(const Op& op) {
  char buf[96];
  unsigned size = op.size, target = op.target, arg = op.arg;
  switch (op.kind) {
    case OpKind::kMalloc:
    case OpKind::kRemoteAlloc:
      std::snprintf(buf, sizeof buf, "%s(%u)", opName(op.kind), size);
      break;
    case OpKind::kAligned:
      std::snprintf(buf, sizeof buf, "aligned(align %u, %u)", 1u << op.alignLog2, size);
      break;
    case OpKind::kCalloc:
      std::snprintf(buf, sizeof buf, "calloc(%u x %u)", 1 + arg % 8, size / (1 + arg % 8));
      break;
    case OpKind::kRealloc:
      std::snprintf(buf, sizeof buf, "realloc(#%u, %u)", target, size);
      break;
    case OpKind::kFree:
    case OpKind::kUsableSize:
    case OpKind::kHandOff:
      std::snprintf(buf, sizeof buf, "%s(#%u)", opName(op.kind), target);
      break;
    case OpKind::kCompact:
      std::snprintf(buf, sizeof buf, "compact(%s)", (arg & 1) ? "detach first" : "attached");
      break;
    case OpKind::kOversize:
      std::snprintf(buf, sizeof buf, "oversize(variant %u)", arg);
      break;
    case OpKind::kAllocMany:
      std::snprintf(buf, sizeof buf, "alloc_many(%u x %u)", 1 + arg % 128, size);
      break;
    case OpKind::kFreeEvery:
      std::snprintf(buf, sizeof buf, "free_every(stride %u, #%u)", 2 + arg % 15, target);
      break;
    default:
      std::snprintf(buf, sizeof buf, "%s", opName(op.kind));
      break;
  }
  return buf;
}

std::string describe(const std::vector<Op>& ops) {
  std::string out;
  for (size_t i = 0; i < ops.size(); ++i) {
    out += "  ";
    out += std::to_string(i);
    out += ": ";
    out += describe(ops[i]);
    out += '\n';
  }
  return out;
}

uint32_t decodeSize(uint8_t selector, uint32_t value24) {
  uint32_t v = value24 & 0xffffff;
  switch (selector & 7) {
    case 0: return v % 129;  // tiny
    case 1: return v % 1025;
    case 2: return v % static_cast<uint32_t>(kMaxSmallSize + 1);  // any small request
    case 3: {
      // A class size and its neighbours: size - 1, size, size + 1, size + 2.
      uint32_t classSize = sizeClass(static_cast<int>((v >> 2) % kNumClasses)).size;
      return classSize + (v & 3) - 1;
    }
    case 4: return static_cast<uint32_t>(kMaxSmallSize + 1 + v % (1u << 18));  // large, < 300 KiB
    case 5: return static_cast<uint32_t>(kMaxSmallSize + 1 + v % (kMaxOpSize - kMaxSmallSize));
    case 6: return (v % 256 + 1) * 4096;  // page multiples up to 1 MiB
    default: return v % (kMaxOpSize + 1);  // exact
  }
}

Op normalized(Op op) {
  if (static_cast<int>(op.kind) >= kOpKindCount) op.kind = OpKind::kMalloc;
  Layout l = layoutOf(op.kind);
  op.size = l.size ? (op.size > kMaxOpSize ? kMaxOpSize : op.size) : 0;
  if (!l.align) {
    op.alignLog2 = kMinAlignLog2;
  } else if (op.alignLog2 < kMinAlignLog2 || op.alignLog2 > kMaxAlignLog2) {
    op.alignLog2 = static_cast<uint8_t>(kMinAlignLog2 + op.alignLog2 % kAlignChoices);
  }
  if (!l.arg) op.arg = 0;
  if (!l.target) op.target = 0;
  return op;
}

DecodedInput decodeOps(const uint8_t* data, size_t size, size_t maxOps) {
  DecodedInput in;
  ByteReader r(data, size);
  uint8_t flags = r.u8();
  in.flags.anonymousArena = (flags & 1) != 0;
  in.flags.seed = static_cast<uint8_t>(flags >> 1);
  while (!r.done() && in.ops.size() < maxOps) {
    Op op;
    op.kind = static_cast<OpKind>(r.u8() % kOpKindCount);
    Layout l = layoutOf(op.kind);
    if (l.align) op.alignLog2 = static_cast<uint8_t>(kMinAlignLog2 + r.u8() % kAlignChoices);
    if (l.arg) op.arg = r.u8();
    if (l.target) op.target = r.u16();
    if (l.size) {
      uint8_t selector = r.u8();
      op.size = decodeSize(selector, r.u24());
    }
    in.ops.push_back(op);
  }
  return in;
}

std::vector<uint8_t> encodeOps(const InputFlags& flags, const std::vector<Op>& ops) {
  std::vector<uint8_t> out;
  out.push_back(static_cast<uint8_t>((flags.anonymousArena ? 1 : 0) | ((flags.seed & 0x7f) << 1)));
  for (const Op& raw : ops) {
    Op op = normalized(raw);
    Layout l = layoutOf(op.kind);
    out.push_back(static_cast<uint8_t>(op.kind));
    if (l.align) out.push_back(static_cast<uint8_t>(op.alignLog2 - kMinAlignLog2));
    if (l.arg) out.push_back(op.arg);
    if (l.target) {
      out.push_back(static_cast<uint8_t>(op.target));
      out.push_back(static_cast<uint8_t>(op.target >> 8));
    }
    if (l.size) {
      out.push_back(kExactSizeSelector);
      out.push_back(static_cast<uint8_t>(op.size));
      out.push_back(static_cast<uint8_t>(op.size >> 8));
      out.push_back(static_cast<uint8_t>(op.size >> 16));
    }
  }
  return out;
}

}  // namespace mesh::model
