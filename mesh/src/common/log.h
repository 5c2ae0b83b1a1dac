// Formatting and messages without malloc: a fixed buffer that appends text and numbers, then
// writes itself to a file descriptor in one write(2). Usable from signal handlers and from the
// malloc path.
#pragma once

#include <cstddef>
#include <cstdint>

namespace mesh {

class LineBuffer {
 public:
  LineBuffer& add(const char* s);
  LineBuffer& add(char c);
  LineBuffer& addU(uint64_t v);
  LineBuffer& addI(int64_t v);
  LineBuffer& addHex(uint64_t v);  // 0x-prefixed
  LineBuffer& addPtr(const void* p) { return addHex(reinterpret_cast<uintptr_t>(p)); }
  // Fixed point: v / 10^decimals, e.g. addFixed(1234, 2) prints 12.34.
  LineBuffer& addFixed(uint64_t v, int decimals);
  LineBuffer& pad(size_t column);  // spaces up to the given column of the current line
  const char* data() const { return buf_; }
  size_t size() const { return len_; }
  bool truncated() const { return truncated_; }
  void clear() { len_ = lineStart_ = 0; truncated_ = false; }
  void writeTo(int fd);

 private:
  static constexpr size_t kCapacity = 4096;
  char buf_[kCapacity];
  size_t len_ = 0;
  size_t lineStart_ = 0;
  bool truncated_ = false;
};

// Prints "mesh: <what> <ptr>" on one line of stderr and aborts.
[[noreturn]] void fatalPointer(const char* what, const void* ptr);
// Prints "mesh: <message>" on one line of stderr and aborts.
[[noreturn]] void fatal(const char* message);
// Prints "mesh: warning: <message>" once per call site when warnings are enabled.
void warn(const char* message);

}  // namespace mesh
