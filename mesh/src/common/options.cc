#include "common/options.h"

#include <cstring>

#include "common/log.h"
#include "platform/os.h"

namespace mesh {

const OptionInfo kOptionTable[kOptionCount] = {
#define MESH_OPTION(name, env, def, min, max, help) {#name, env, def, min, max, help},
#include "mesh/options.def"
#undef MESH_OPTION
};

Options::Options() {
  for (int i = 0; i < kOptionCount; ++i) values_[i].store(kOptionTable[i].def);
}

bool Options::set(Opt o, long value) {
  const OptionInfo& info = kOptionTable[static_cast<int>(o)];
  if (value < info.min || value > info.max) return false;
  values_[static_cast<int>(o)].store(value, std::memory_order_relaxed);
  return true;
}

void Options::loadFromEnvironment() {
  for (int i = 0; i < kOptionCount; ++i) {
    const char* text = os::getEnv(kOptionTable[i].env);
    if (text == nullptr) continue;
    long v;
    if (!parseLong(text, &v) || !set(static_cast<Opt>(i), v)) {
      LineBuffer line;
      line.add("mesh: warning: ignoring ").add(kOptionTable[i].env).add("='").add(text);
      line.add("' (expected an integer from ").addI(kOptionTable[i].min).add(" to ");
      line.addI(kOptionTable[i].max).add(")\n");
      line.writeTo(2);
    }
  }
}

int Options::find(const char* name) {
  if (name == nullptr) return -1;
  for (int i = 0; i < kOptionCount; ++i) {
    if (std::strcmp(kOptionTable[i].name, name) == 0) return i;
  }
  return -1;
}

bool parseLong(const char* s, long* out) {
  if (s == nullptr) return false;
  bool negative = *s == '-';
  if (negative) ++s;
  if (*s < '0' || *s > '9') return false;
  unsigned long v = 0;
  for (; *s >= '0' && *s <= '9'; ++s) {
    v = v * 10 + static_cast<unsigned long>(*s - '0');
    if (v > 0x7fffffffffffffffull) return false;
  }
  if (*s != '\0') return false;
  *out = negative ? -static_cast<long>(v) : static_cast<long>(v);
  return true;
}

}  // namespace mesh
