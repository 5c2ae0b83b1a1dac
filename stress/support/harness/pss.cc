#include "harness/pss.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

namespace harness {

SmapsRollup::SmapsRollup() {
  int fd = open("/proc/self/smaps_rollup", O_RDONLY | O_CLOEXEC);
  text_[0] = '\0';
  if (fd < 0) return;
  // The kernel may hand the text over in pieces: read until the end or the buffer is full.
  size_t len = 0;
  ssize_t got;
  while (len < sizeof text_ - 1 && (got = read(fd, text_ + len, sizeof text_ - 1 - len)) > 0)
    len += static_cast<size_t>(got);
  close(fd);
  text_[len] = '\0';
  valid_ = len > 0;
}

long SmapsRollup::kib(const char* key) const {
  if (!valid_) return -1;
  size_t klen = std::strlen(key);
  // Matches whole keys at the start of a line, so "Pss" does not find "Pss_Anon".
  for (const char* line = text_; *line != '\0';) {
    if (std::strncmp(line, key, klen) == 0 && line[klen] == ':')
      return std::strtol(line + klen + 1, nullptr, 10);
    const char* nl = std::strchr(line, '\n');
    if (nl == nullptr) break;
    line = nl + 1;
  }
  return -1;
}

long smaps_rollup_kib(const char* key) { return SmapsRollup().kib(key); }

long anon_pss_kib() {
  SmapsRollup r;
  long anon = r.kib("Pss_Anon"), shmem = r.kib("Pss_Shmem");
  if (anon >= 0 && shmem >= 0) return anon + shmem;
  return r.kib("Pss");
}

}  // namespace harness
