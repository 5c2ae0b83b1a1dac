// A fresh, small GlobalHeap for each test: a 64 MiB arena, so no test depends on another's state
// or on the process-wide allocator.
#pragma once

#include <gtest/gtest.h>

#include <memory>

#include "global/global_heap.h"

namespace mesh::test {

inline HeapConfig smallHeapConfig(bool memfd = true) {
  HeapConfig c;
  c.arena.reserveBytes = size_t{64} << 20;
  c.arena.minReserveBytes = size_t{16} << 20;
  c.arena.maxDirtyBytes = size_t{1} << 20;
  c.arena.useMemfd = memfd;
  return c;
}

class FreshHeap : public ::testing::Test {
 protected:
  void SetUp() override {
    heap = std::make_unique<GlobalHeap>();
    ASSERT_TRUE(heap->init(smallHeapConfig()));
  }
  std::unique_ptr<GlobalHeap> heap;
};

}  // namespace mesh::test
