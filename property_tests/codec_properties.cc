// Properties of the operation encoding shared with the fuzzer (fuzz/model/ops.h): sequences
// found by rapidcheck can be saved as fuzzer inputs, and every byte string is a valid input.
#include <cstdint>
#include <vector>

#include "model/ops.h"
#include "property_support.h"

namespace mesh::proptest {
namespace {

MESH_PROPERTY(OpCodec, EncodeThenDecodeGivesTheSameOps, 100, ()) {
  auto ops = *genOps(OpMix{.retireThread = 1});
  model::InputFlags flags;
  flags.anonymousArena = *rc::gen::arbitrary<bool>();
  flags.seed = *rc::gen::inRange<uint8_t>(0, 128);
  std::vector<uint8_t> bytes = model::encodeOps(flags, ops);
  model::DecodedInput in = model::decodeOps(bytes.data(), bytes.size(), ops.size() + 1);
  RC_ASSERT(in.flags == flags);
  std::vector<Op> expected;
  for (const Op& op : ops) expected.push_back(model::normalized(op));
  RC_ASSERT(in.ops == expected);
}

MESH_PROPERTY(OpCodec, AnyBytesDecodeToInRangeOpsThatReencodeExactly, 100, ()) {
  auto bytes = *rc::gen::container<std::vector<uint8_t>>(rc::gen::arbitrary<uint8_t>());
  model::DecodedInput in = model::decodeOps(bytes.data(), bytes.size());
  for (const Op& op : in.ops) {
    RC_ASSERT(op.size <= model::kMaxOpSize);
    RC_ASSERT(op.alignLog2 >= model::kMinAlignLog2);
    RC_ASSERT(op.alignLog2 <= model::kMaxAlignLog2);
    RC_ASSERT(model::normalized(op) == op);
  }
  std::vector<uint8_t> again = model::encodeOps(in.flags, in.ops);
  model::DecodedInput in2 = model::decodeOps(again.data(), again.size());
  RC_ASSERT(in2.flags == in.flags);
  RC_ASSERT(in2.ops == in.ops);
}

}  // namespace
}  // namespace mesh::proptest
