// Small program run as a child by the API tests (linked to libmesh like the tests).
//   mesh_api_helper probe          prints MAIN and exits (start-up only)
//   mesh_api_helper work           mixed allocation work; every failure must be NULL/ENOMEM
//   mesh_api_helper exhaust        1 MiB blocks until NULL/ENOMEM, then small blocks must work
//   mesh_api_helper option NAME    prints mesh_get_option(NAME)
//   mesh_api_helper commit         allocates and frees 512 MiB, forks, then prints the private
//                                  writable memory the kernel charges it for (commit_kib=)
// Exit code 0 means success; other codes name the failed step (see each mode). Output is
// written with write(2) so that it works when malloc fails, and never allocates itself.
#include <dlfcn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "mesh/mesh.h"
#include "ops_helper_util.h"

namespace {

using ops_helper::Say;

inline size_t Opaque(size_t n) {
  asm volatile("" : "+r"(n));
  return n;
}

uint64_t Mix(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  return x;
}

// Touches one byte per page and the last byte.
void Fill(unsigned char* p, size_t n, uint64_t seed) {
  for (size_t i = 0; i + 1 < n; i += 4096) p[i] = static_cast<unsigned char>(Mix(seed + i));
  if (n) p[n - 1] = static_cast<unsigned char>(Mix(seed ^ n));
}

bool Check(const unsigned char* p, size_t n, uint64_t seed) {
  for (size_t i = 0; i + 1 < n; i += 4096)
    if (p[i] != static_cast<unsigned char>(Mix(seed + i))) return false;
  return n == 0 || p[n - 1] == static_cast<unsigned char>(Mix(seed ^ n));
}

long MemfdBacked() {
  auto get = reinterpret_cast<int (*)(mesh_stats*)>(dlsym(RTLD_DEFAULT, "mesh_get_stats"));
  if (!get) return -1;
  mesh_stats s{};
  if (get(&s) != 0) return -2;
  return long(s.memfd_backed);
}

struct Counters {
  unsigned long ok = 0, enomem = 0;
};

// A NULL result must come with ENOMEM; returns false otherwise.
bool Account(void* p, Counters* c) {
  if (p) {
    ++c->ok;
    return true;
  }
  if (errno != ENOMEM) {
    Say("allocation failed with errno %d (%s), not ENOMEM\n", errno, strerror(errno));
    return false;
  }
  ++c->enomem;
  return true;
}

// Exit codes: 2 wrong errno, 3 content damaged.
int Work() {
  Counters c;
  static unsigned char* slots[512];
  static size_t sizes[512];
  uint64_t x = 88172645463325252ULL;
  for (int i = 0; i < 40000; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    size_t k = x % 512;
    if (slots[k]) {
      if (!Check(slots[k], sizes[k], k)) return 3;
      free(slots[k]);
      slots[k] = nullptr;
    }
    size_t n = 1 + (x >> 12) % 3000;
    if (x % 50 == 0) n = 100000 + (x >> 20) % (4u << 20);
    errno = 0;
    void* p = (x % 7 == 0) ? calloc(1, n) : malloc(n);
    if (!Account(p, &c)) return 2;
    if (p) {
      slots[k] = static_cast<unsigned char*>(p);
      sizes[k] = n;
      Fill(slots[k], n, k);
    }
  }
  for (size_t k = 0; k < 512; ++k) {
    if (slots[k] && !Check(slots[k], sizes[k], k)) return 3;
    free(slots[k]);
    slots[k] = nullptr;
  }
  // Fragment a size class and compact: meshing must cope with failing system calls.
  static void* frag[20000];
  for (int i = 0; i < 20000; ++i) {
    errno = 0;
    frag[i] = malloc(64);
    if (!Account(frag[i], &c)) return 2;
    if (frag[i]) memset(frag[i], i & 0xff, 64);
  }
  for (int i = 0; i < 20000; ++i) {
    if (i % 4 != 0) {
      free(frag[i]);
      frag[i] = nullptr;
    }
  }
  if (auto compact = reinterpret_cast<size_t (*)()>(dlsym(RTLD_DEFAULT, "mesh_compact"))) compact();
  for (int i = 0; i < 20000; i += 4) {
    if (!frag[i]) continue;
    const unsigned char* b = static_cast<const unsigned char*>(frag[i]);
    for (int j = 0; j < 64; ++j)
      if (b[j] != (i & 0xff)) return 3;
    free(frag[i]);
  }
  // Large blocks.
  for (size_t n = 1u << 20; n <= (16u << 20); n *= 2) {
    errno = 0;
    void* p = malloc(n);
    if (!Account(p, &c)) return 2;
    if (p) {
      Fill(static_cast<unsigned char*>(p), n, n);
      if (!Check(static_cast<unsigned char*>(p), n, n)) return 3;
      free(p);
    }
  }
  Say("work ok allocs=%lu enomem=%lu memfd_backed=%ld\n", c.ok, c.enomem, MemfdBacked());
  return 0;
}

// Exit codes: 2 failure without ENOMEM, 3 small allocation failed after exhaustion,
// 4 nothing could be allocated at all, 6 the limit never hit, 7 no recovery after freeing.
int Exhaust() {
  static void* blocks[16384];
  size_t count = 0;
  const size_t kBlock = 1u << 20;
  for (;;) {
    if (count == 16384) {
      Say("exhaust: 16 GiB allocated without failure: no address-space limit?\n");
      return 6;
    }
    errno = 0;
    void* p = malloc(Opaque(kBlock));
    if (!p) {
      if (errno != ENOMEM) {
        Say("exhaust: malloc(1 MiB) NULL with errno %d, not ENOMEM\n", errno);
        return 2;
      }
      break;
    }
    static_cast<unsigned char*>(p)[0] = 1;
    static_cast<unsigned char*>(p)[kBlock - 1] = 2;
    blocks[count++] = p;
  }
  Say("exhaust: NULL/ENOMEM after %zu MiB (exhaust_mib=%zu)\n", count, count);
  if (count == 0) return 4;
  // Small allocations still succeed, without freeing anything first.
  static void* small[1000];
  for (int i = 0; i < 1000; ++i) {
    errno = 0;
    small[i] = malloc(Opaque(32));
    if (!small[i]) {
      Say("exhaust: malloc(32) #%d failed (errno %d) after exhaustion\n", i, errno);
      return 3;
    }
    memset(small[i], 0x5c, 32);
  }
  for (int i = 0; i < 1000; ++i) free(small[i]);
  // After freeing, large blocks are available again.
  for (size_t i = 0; i < count; ++i) {
    if (static_cast<unsigned char*>(blocks[i])[0] != 1) return 5;
    free(blocks[i]);
  }
  void* again = malloc(Opaque(64u << 20));
  if (!again) {
    Say("exhaust: malloc(64 MiB) failed after freeing everything\n");
    return 7;
  }
  free(again);
  Say("exhaust-ok\n");
  return 0;
}

int Option(const char* name) {
  auto get = reinterpret_cast<int (*)(const char*, long*)>(dlsym(RTLD_DEFAULT, "mesh_get_option"));
  if (!get) {
    Say("option: no libmesh\n");
    return 9;
  }
  long v = 0;
  int rc = get(name, &v);
  Say("option %s rc=%d value=%ld\n", name, rc, v);
  return rc == 0 ? 0 : 8;
}

// Sum of the sizes of this process's mappings that count towards the commit charge (VmFlags
// "ac" in /proc/self/smaps), in KiB; -1 when smaps cannot be read.
long ChargedKiB() {
  FILE* f = fopen("/proc/self/smaps", "r");
  if (!f) return -1;
  char line[512];
  long size = 0, total = 0;
  while (fgets(line, sizeof line, f)) {
    long v;
    if (sscanf(line, "Size: %ld kB", &v) == 1) size = v;
    if (strncmp(line, "VmFlags:", 8) == 0 && strstr(line, " ac") != nullptr) total += size;
  }
  fclose(f);
  return total;
}

int Commit() {
  static void* blocks[64];
  for (int i = 0; i < 64; ++i) {
    blocks[i] = malloc(Opaque(8u << 20));
    if (!blocks[i]) {
      Say("commit: malloc(8 MiB) #%d failed (errno %d), charged %ld KiB\n", i, errno, ChargedKiB());
      return 2;
    }
    memset(blocks[i], 1, 8u << 20);
  }
  long peak = ChargedKiB();
  for (int i = 0; i < 64; ++i) free(blocks[i]);
  static void* small[20000];
  for (int i = 0; i < 20000; ++i) small[i] = malloc(Opaque(100));
  for (int i = 0; i < 20000; ++i) free(small[i]);
  pid_t pid = fork();
  if (pid < 0) {
    Say("commit: fork failed (errno %d)\n", errno);
    return 3;
  }
  if (pid == 0) _exit(0);
  int status = 0;
  waitpid(pid, &status, 0);
  Say("commit_peak_kib=%ld commit_kib=%ld\n", peak, ChargedKiB());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    Say("usage: mesh_api_helper probe|work|exhaust|option NAME\n");
    return 64;
  }
  if (strcmp(argv[1], "probe") == 0) {
    Say("MAIN\n");
    return 0;
  }
  if (strcmp(argv[1], "work") == 0) return Work();
  if (strcmp(argv[1], "exhaust") == 0) return Exhaust();
  if (strcmp(argv[1], "option") == 0 && argc > 2) return Option(argv[2]);
  if (strcmp(argv[1], "commit") == 0) return Commit();
  Say("unknown mode %s\n", argv[1]);
  return 64;
}
