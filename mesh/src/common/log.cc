#include "common/log.h"

#include "platform/os.h"

namespace mesh {

LineBuffer& LineBuffer::add(char c) {
  if (len_ + 1 < kCapacity) {
    buf_[len_++] = c;
    if (c == '\n') lineStart_ = len_;
  } else {
    truncated_ = true;
  }
  return *this;
}

LineBuffer& LineBuffer::add(const char* s) {
  while (*s != '\0') add(*s++);
  return *this;
}

LineBuffer& LineBuffer::addU(uint64_t v) {
  char tmp[24];
  int n = 0;
  do {
    tmp[n++] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v != 0);
  while (n > 0) add(tmp[--n]);
  return *this;
}

LineBuffer& LineBuffer::addI(int64_t v) {
  if (v < 0) {
    add('-');
    return addU(static_cast<uint64_t>(-(v + 1)) + 1);
  }
  return addU(static_cast<uint64_t>(v));
}

LineBuffer& LineBuffer::addHex(uint64_t v) {
  add("0x");
  char tmp[16];
  int n = 0;
  do {
    tmp[n++] = "0123456789abcdef"[v & 15];
    v >>= 4;
  } while (v != 0);
  while (n > 0) add(tmp[--n]);
  return *this;
}

LineBuffer& LineBuffer::addFixed(uint64_t v, int decimals) {
  uint64_t scale = 1;
  for (int i = 0; i < decimals; ++i) scale *= 10;
  addU(v / scale);
  if (decimals > 0) {
    add('.');
    uint64_t frac = v % scale;
    for (uint64_t s = scale / 10; s > 0; s /= 10) add(static_cast<char>('0' + (frac / s) % 10));
  }
  return *this;
}

LineBuffer& LineBuffer::pad(size_t column) {
  while (len_ - lineStart_ < column && len_ + 1 < kCapacity) add(' ');
  return *this;
}

void LineBuffer::writeTo(int fd) {
  os::writeAll(fd, buf_, len_);
  clear();
}

void fatalPointer(const char* what, const void* ptr) {
  LineBuffer line;
  line.add("mesh: ").add(what).add(' ').addPtr(ptr).add('\n');
  line.writeTo(2);
  os::abortProcess();
}

void fatal(const char* message) {
  LineBuffer line;
  line.add("mesh: ").add(message).add('\n');
  line.writeTo(2);
  os::abortProcess();
}

void warn(const char* message) {
  LineBuffer line;
  line.add("mesh: warning: ").add(message).add('\n');
  line.writeTo(2);
}

}  // namespace mesh
