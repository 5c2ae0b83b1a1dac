// The background thread's pacing rule (contract G35 in docs/behaviour.md): how long a round
// meshes, from what the round sees.
#include <gtest/gtest.h>

#include <cstdint>

#include "meshing/pacing.h"

namespace mesh {
namespace {

using pacing::Round;
using pacing::roundBudgetNs;

constexpr uint64_t kMiB = uint64_t{1} << 20;
constexpr uint64_t kPeriod = 100'000'000;  // the default MESH_PERIOD_MS, 100 ms

uint64_t budget(uint64_t gain, bool quiet, bool busy) { return roundBudgetNs(Round{kPeriod, gain, quiet, busy}); }

TEST(Pacing, G35_FromSixteenMiBAProgramThatMostlyWaitsGetsTheWholePeriod) {
  // A lightly loaded server after a mass deletion: it still serves (not quiet) but leaves the
  // CPU idle most of the time.
  EXPECT_EQ(budget(120 * kMiB, false, false), kPeriod);
  EXPECT_EQ(budget(16 * kMiB, false, false), kPeriod);
}

TEST(Pacing, G35_ASmallerGainGetsItsShareAndAtLeastATwentieth) {
  EXPECT_EQ(budget(8 * kMiB, false, false), kPeriod / 2);
  EXPECT_EQ(budget(4 * kMiB, false, false), kPeriod / 4);
  EXPECT_EQ(budget(1 * kMiB, false, false), kPeriod / 16);
  EXPECT_EQ(budget(256 * 1024, false, false), kPeriod / 20);
}

TEST(Pacing, G35_AProgramThatKeepsACpuBusyGetsHalfAsMuch) {
  EXPECT_EQ(budget(120 * kMiB, false, true), kPeriod / 2);
  EXPECT_EQ(budget(8 * kMiB, false, true), kPeriod / 4);
  EXPECT_EQ(budget(1 * kMiB, false, true), kPeriod / 20);  // 1/32 of the period, raised to 1/20
}

TEST(Pacing, G35_AQuietProgramGetsTheWholePeriodForAnyGain) {
  // No span refill and no slow free since the last round, busy computing or not.
  EXPECT_EQ(budget(256 * 1024, true, false), kPeriod);
  EXPECT_EQ(budget(120 * kMiB, true, true), kPeriod);
}

TEST(Pacing, G35_NothingToWinOrMeshingOffIsNoRoundAndALongPeriodIsCapped) {
  EXPECT_EQ(budget(0, true, false), 0u);
  EXPECT_EQ(roundBudgetNs(Round{0, 120 * kMiB, true, false}), 0u);  // MESH_PERIOD_MS=0
  // MESH_PERIOD_MS=3600000 (its largest value): a round still ends after half a second.
  uint64_t hour = uint64_t{3600} * 1'000'000'000;
  EXPECT_EQ(roundBudgetNs(Round{hour, 120 * kMiB, false, false}), pacing::kMaxRoundNs);
  EXPECT_EQ(roundBudgetNs(Round{hour, 15 * kMiB, false, true}), pacing::kMaxRoundNs);
  EXPECT_EQ(roundBudgetNs(Round{hour, 256 * 1024, false, true}), pacing::kMaxRoundNs);
}

// Round::busy from the clocks: the program's share is the process's CPU time less ours.
TEST(Pacing, G35_TheProgramIsBusyFromHalfACoreOfItsOwnCpuTime) {
  using pacing::Clocks;
  using pacing::programBusy;
  constexpr uint64_t kMs = 1'000'000;
  Clocks before{1000 * kMs, 400 * kMs, 30 * kMs};
  // 100 ms of wall time; the process used 80 ms of CPU, 20 of them ours: the program 60 (busy).
  EXPECT_TRUE(programBusy(before, Clocks{1100 * kMs, 480 * kMs, 50 * kMs}));
  // The process used 90 ms, 50 of them ours (meshing at full pace): the program 40 (not busy).
  EXPECT_FALSE(programBusy(before, Clocks{1100 * kMs, 490 * kMs, 80 * kMs}));
  // Exactly half a core counts as busy; just under does not.
  EXPECT_TRUE(programBusy(before, Clocks{1100 * kMs, 450 * kMs, 30 * kMs}));
  EXPECT_FALSE(programBusy(before, Clocks{1100 * kMs, 450 * kMs - 1, 30 * kMs}));
  // Two busy threads on two cores: 200 ms of CPU in 100 ms.
  EXPECT_TRUE(programBusy(before, Clocks{1100 * kMs, 600 * kMs, 30 * kMs}));
  // Nothing but us ran (our figure may read a little above the process's: no wrap-around).
  EXPECT_FALSE(programBusy(before, Clocks{1100 * kMs, 420 * kMs, 51 * kMs}));
  // The service restarted and counts from 0 again: all it reads now is ours. 5 ms ours of 80:
  // the program used 75 (busy); 25 ms ours of 60: the program used 35 (not busy).
  EXPECT_TRUE(programBusy(before, Clocks{1100 * kMs, 480 * kMs, 5 * kMs}));
  EXPECT_FALSE(programBusy(before, Clocks{1100 * kMs, 460 * kMs, 25 * kMs}));
}

}  // namespace
}  // namespace mesh
