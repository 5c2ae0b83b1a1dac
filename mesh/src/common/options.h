// Run-time options: one table (include/mesh/options.def) gives each option its name, environment
// variable, default, range and help text. Values are atomics so they can change at run time.
#pragma once

#include <atomic>
#include <cstddef>

namespace mesh {

enum class Opt : int {
#define MESH_OPTION(name, env, def, min, max, help) name,
#include "mesh/options.def"
#undef MESH_OPTION
  kCount
};

struct OptionInfo {
  const char* name;
  const char* env;
  long def;
  long min;
  long max;
  const char* help;
};

inline constexpr int kOptionCount = static_cast<int>(Opt::kCount);
extern const OptionInfo kOptionTable[kOptionCount];

class Options {
 public:
  Options();
  long get(Opt o) const { return values_[static_cast<int>(o)].load(std::memory_order_relaxed); }
  // False (and no change) when the value is outside the option's range.
  bool set(Opt o, long value);
  // Reads every MESH_* variable; bad values are reported on stderr and ignored. No allocation.
  void loadFromEnvironment();
  // Index of the option called name ("period_ms"), or -1.
  static int find(const char* name);

 private:
  std::atomic<long> values_[kOptionCount];
};

// Parses a decimal integer; false on junk or overflow. No allocation, no locale.
bool parseLong(const char* s, long* out);

}  // namespace mesh
