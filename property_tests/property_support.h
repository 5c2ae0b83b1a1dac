// Shared pieces of the property tests: rapidcheck generators for the model's operations
// (fuzz/model/ops.h), the MESH_PROPERTY macro, and helpers that run a sequence and report a
// violation the way rapidcheck can shrink.
#pragma once

#include <gtest/gtest.h>
#include <rapidcheck.h>

#include <algorithm>
#include <cstdint>
#include <functional>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "model/alloc_model.h"
#include "model/ops.h"

namespace mesh::model {
// How rapidcheck prints an operation in a counterexample (found by argument-dependent lookup).
void showValue(const Op& op, std::ostream& os);
}  // namespace mesh::model

namespace mesh::proptest {

using model::Op;
using model::OpKind;

// Relative weights of the operation kinds in a generated sequence (0 leaves a kind out).
struct OpMix {
  int malloc = 8;
  int aligned = 2;
  int calloc = 2;
  int realloc = 5;
  int free = 6;
  int usableSize = 1;
  int compact = 1;
  int handOff = 1;
  int remoteAlloc = 1;
  int retireThread = 0;
  int oversize = 1;
  int allocMany = 1;
  int freeEvery = 1;
};

// Request sizes: tiny, any small class, class sizes and their neighbours, large, up to 4 MiB.
rc::Gen<uint32_t> genSize();
rc::Gen<Op> genOp(const OpMix& mix);
// Sequences of up to about `scale` x 100 operations at rapidcheck's largest size.
rc::Gen<std::vector<Op>> genOps(const OpMix& mix, double scale = 1.0);

// Runs ops through a fresh Model on ex; on a violation saves the sequence (see
// MESH_PROPERTY_SAVE_DIR in README.md) and fails the rapidcheck case with the message.
void runSequence(model::Executor& ex, const std::vector<Op>& ops, const model::Limits& limits = {});

// A forked child's result: its wait status and everything it wrote to stderr.
struct ChildResult {
  bool timedOut = false;
  int status = 0;
  std::string output;
};
// Runs body in a forked child (stderr captured; killed when it hangs), which then exits with 0.
ChildResult runInChild(const std::function<void()>& body);
// "" when the child aborted with "mesh: double free of <p>" on stderr, else what it did instead.
std::string expectDoubleFreeReport(const ChildResult& r, const void* p);

// Number of cases for a property: `percent` of rapidcheck's max_success (RC_PARAMS or
// MESH_PROPERTY_CASES), at least 1.
int casesFor(int percent);

// Checks a rapidcheck property inside the current gtest test with casesFor(percent) cases.
template <typename Property>
void checkProperty(Property&& property, int percent) {
  const ::testing::TestInfo* info = ::testing::UnitTest::GetInstance()->current_test_info();
  rc::detail::TestMetadata metadata;
  metadata.id = std::string(info->test_suite_name()) + "/" + info->name();
  metadata.description = info->name();
  rc::detail::TestParams params = rc::detail::configuration().testParams;
  params.maxSuccess = casesFor(percent);
  const auto result = rc::detail::checkTestable(std::forward<Property>(property), metadata, params);
  std::ostringstream message;
  rc::detail::printResultMessage(result, message);
  if (result.template is<rc::detail::SuccessResult>()) {
    std::cout << metadata.id << ": " << message.str() << std::endl;
  } else {
    FAIL() << message.str() << "\nrapidcheck seed of this run: " << params.seed
           << " (rerun this test with RC_PARAMS=\"seed=" << params.seed << "\")";
  }
}

}  // namespace mesh::proptest

// MESH_PROPERTY(Suite, Name, percent, (args...)) { body }: a gtest test Suite.Name that checks
// the property body over percent% of the configured number of cases.
#define MESH_PROPERTY(Suite, Name, percent, ArgList)                                 \
  static void meshProperty_##Suite##_##Name ArgList;                                 \
  TEST(Suite, Name) {                                                                \
    ::mesh::proptest::checkProperty(&meshProperty_##Suite##_##Name, (percent));      \
  }                                                                                  \
  static void meshProperty_##Suite##_##Name ArgList
