#include "miniheap/size_classes.h"

namespace mesh {

int classForAligned(size_t n, size_t align) {
  if (n > kMaxSmallSize || align > kSpanPageBytes) return -1;
  for (int c = classForSize(n); c < kNumClasses; ++c) {
    if (sizeClass(c).size % align == 0) return c;
  }
  return -1;
}

}  // namespace mesh
