// Helpers shared by mesh_ops_helper's modes (see ops_helper_util.h).
#include "ops_helper_util.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdarg.h>
#include <time.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace ops_helper {

void Say(const char* fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  if (n > int(sizeof buf) - 1) n = int(sizeof buf) - 1;
  if (n > 0) {
    ssize_t ignored = write(1, buf, size_t(n));
    (void)ignored;
  }
}

void SleepMs(long ms) {
  timespec ts{ms / 1000, (ms % 1000) * 1000000};
  while (nanosleep(&ts, &ts) != 0) {
  }
}

// Reads a small /proc file into buf without allocating.
bool ReadProc(const char* path, char* buf, size_t len) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  size_t used = 0;
  ssize_t n;
  while (used + 1 < len && (n = read(fd, buf + used, len - 1 - used)) > 0) used += size_t(n);
  close(fd);
  buf[used] = '\0';
  return used > 0;
}

// Field 20 of /proc/self/stat (after the parenthesised command name).
// Threads of the process named name (/proc/self/task/*/comm).
long ThreadsNamed(const char* name) {
  DIR* dir = opendir("/proc/self/task");
  if (dir == nullptr) return -1;
  long n = 0;
  while (dirent* e = readdir(dir)) {
    if (e->d_name[0] == '.') continue;
    char path[300], comm[64];
    snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
    if (ReadProc(path, comm, sizeof comm) && strcmp(comm, name) == 0) ++n;
  }
  closedir(dir);
  return n;
}

// The write-protection service (mesh-wp, meshing/write_protect.h) starts with the background
// thread where the kernel allows it; its own tests count it (WpThreads).
long WpThreads() { return ThreadsNamed("mesh-wp\n"); }

// The process's threads, apart from the write-protection service.
long Threads() {
  char buf[1024];
  if (!ReadProc("/proc/self/stat", buf, sizeof buf)) return -1;
  const char* p = strrchr(buf, ')');
  if (p == nullptr) return -1;
  for (int field = 2; field < 20 && p != nullptr; ++field) p = strchr(p + 1, ' ');
  long all = p ? strtol(p + 1, nullptr, 10) : -1;
  long wp = WpThreads();
  return all < 0 || wp < 0 ? -1 : all - wp;
}

bool EnvOn(const char* name) {
  const char* v = getenv(name);
  return v != nullptr && strcmp(v, "1") == 0;
}

mesh_stats Stats() {
  mesh_stats s{};
  mesh_get_stats(&s);
  return s;
}

// Enough slow frees for the background thread to start (it starts lazily on the free path).
void WarmUp() {
  static void* p[4096];
  for (int round = 0; round < 4; ++round) {
    for (auto& q : p) q = malloc(64);
    for (size_t i = 0; i < 4096; i += 2) free(p[i]);
    for (size_t i = 1; i < 4096; i += 2) free(p[i]);
  }
}

// Waits (without allocating) up to ms for the thread count to reach n.
bool WaitForThreads(long n, long ms) {
  for (long waited = 0; Threads() != n; waited += 10) {
    if (waited >= ms) return false;
    SleepMs(10);
  }
  return true;
}

}  // namespace ops_helper
