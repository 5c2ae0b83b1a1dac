// main() of the property test programs: maps MESH_PROPERTY_CASES (default 300) onto rapidcheck's
// max_success unless RC_PARAMS sets it, prints the seed of the run, then runs the gtest tests.
#include <gtest/gtest.h>
#include <rapidcheck.h>

#include <cstdio>
#include <cstdlib>
#include <string>

namespace {

// The default number of cases (rapidcheck's own default is 100): the whole default run stays
// well under a minute on two cores.
constexpr long kDefaultCases = 300;

void applyCaseCount() {
  long n = kDefaultCases;
  const char* cases = std::getenv("MESH_PROPERTY_CASES");
  if (cases != nullptr && *cases != '\0') {
    char* end = nullptr;
    long v = std::strtol(cases, &end, 10);
    if (*end == '\0' && v >= 1 && v <= 100000000) {
      n = v;
    } else {
      std::fprintf(stderr, "property tests: ignoring MESH_PROPERTY_CASES=%s (want 1..100000000)\n",
                   cases);
    }
  }
  const char* old = std::getenv("RC_PARAMS");
  std::string params = old != nullptr ? old : "";
  if (params.find("max_success") != std::string::npos) return;  // RC_PARAMS wins
  if (!params.empty()) params.push_back(' ');
  params.append("max_success=").append(std::to_string(n));
  setenv("RC_PARAMS", params.c_str(), 1);
}

}  // namespace

int main(int argc, char** argv) {
  applyCaseCount();
  ::testing::InitGoogleTest(&argc, argv);
  if (!GTEST_FLAG_GET(list_tests)) {
    const rc::detail::TestParams& p = rc::detail::configuration().testParams;
    unsigned long long seed = p.seed;
    std::fprintf(stderr,
                 "property tests: up to %d cases per property, max size %d, rapidcheck seed %llu\n"
                 "property tests: reproduce with RC_PARAMS=\"seed=%llu\" and the same "
                 "--gtest_filter\n",
                 p.maxSuccess, p.maxSize, seed, seed);
  }
  return RUN_ALL_TESTS();
}
