#include "common/options.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <cstring>

#include "common/log.h"

namespace mesh {
namespace {

TEST(Options, DefaultsComeFromTheTable) {
  Options o;
  for (int i = 0; i < kOptionCount; ++i) EXPECT_EQ(o.get(static_cast<Opt>(i)), kOptionTable[i].def);
}

TEST(Options, SetRejectsOutOfRange) {
  Options o;
  EXPECT_TRUE(o.set(Opt::period_ms, 5));
  EXPECT_EQ(o.get(Opt::period_ms), 5);
  EXPECT_FALSE(o.set(Opt::period_ms, -1));
  EXPECT_EQ(o.get(Opt::period_ms), 5);
}

TEST(Options, EnvironmentOverridesAndBadValuesAreIgnored) {
  setenv("MESH_PERIOD_MS", "250", 1);
  setenv("MESH_MAX_DIRTY_MB", "lots", 1);
  Options o;
  o.loadFromEnvironment();
  EXPECT_EQ(o.get(Opt::period_ms), 250);
  EXPECT_EQ(o.get(Opt::max_dirty_mb), kOptionTable[static_cast<int>(Opt::max_dirty_mb)].def);
  unsetenv("MESH_PERIOD_MS");
  unsetenv("MESH_MAX_DIRTY_MB");
}

TEST(Options, FindByName) {
  EXPECT_EQ(Options::find("period_ms"), static_cast<int>(Opt::period_ms));
  EXPECT_EQ(Options::find("no_such_option"), -1);
  EXPECT_EQ(Options::find(nullptr), -1);
}

TEST(Options, ParseLong) {
  long v;
  EXPECT_TRUE(parseLong("0", &v));
  EXPECT_EQ(v, 0);
  EXPECT_TRUE(parseLong("-42", &v));
  EXPECT_EQ(v, -42);
  EXPECT_FALSE(parseLong("", &v));
  EXPECT_FALSE(parseLong("12x", &v));
  EXPECT_FALSE(parseLong("99999999999999999999999", &v));
}

TEST(LineBuffer, FormatsWithoutAllocating) {
  LineBuffer b;
  b.add("x=").addU(1234).add(' ').addI(-5).add(' ').addHex(255).add(' ').addFixed(1234, 2);
  EXPECT_EQ(std::string(b.data(), b.size()), "x=1234 -5 0xff 12.34");
  b.clear();
  b.add("ab").pad(5).add('|');
  EXPECT_EQ(std::string(b.data(), b.size()), "ab   |");
}

}  // namespace
}  // namespace mesh
