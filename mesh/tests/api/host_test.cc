// The allocator is invisible to its host (docs/host-contract.md): descriptors and fork.
// Each scenario runs in a child process (RunInChild), since it closes descriptors or lowers
// limits. Under glibc (MESH_API_TESTS_AGAINST_GLIBC) the same scenarios run without meshing:
// they must pass there too.
#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "api_test_util.h"

namespace mesh_api_test {
namespace {

// Meshes now when the running allocator can (libmesh): the number of meshes made.
size_t Compact() {
  const MeshApi* m = Mesh();
  return m != nullptr && m->compact != nullptr ? m->compact() : 0;
}

// Fragments the heap and meshes it; under libmesh at least one mesh must happen (made by
// mesh_compact, or by the background thread, which may start while the heap is fragmented and
// mesh it first).
bool FragmentAndMesh(std::vector<std::unique_ptr<Fragmented>>* keep, uint64_t seed) {
  if (!HaveLibmesh()) return true;
  uint64_t before = Stats().mesh_count;
  keep->push_back(std::make_unique<Fragmented>(100000, seed));
  size_t made = Compact();
  mesh_stats s = Stats();
  if (s.mesh_count > before) return true;
  fprintf(stderr, "no mesh: mesh_compact made %zu (a second one: %zu); mesh_count %llu; meshable bytes %llu\n", made,
          Compact(), static_cast<unsigned long long>(s.mesh_count),
          static_cast<unsigned long long>(s.meshable_free_bytes));
  return false;
}

// Every descriptor of this process with what it refers to.
std::vector<std::string> OpenDescriptors() {
  std::vector<std::string> out;
  DIR* d = opendir("/proc/self/fd");
  if (d == nullptr) return out;
  int self = dirfd(d);
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] == '.' || atoi(e->d_name) == self) continue;
    char link[512] = {};
    std::string path = std::string("/proc/self/fd/") + e->d_name;
    ssize_t n = readlink(path.c_str(), link, sizeof link - 1);
    out.push_back(std::string(e->d_name) + " -> " + (n > 0 ? link : "?"));
  }
  closedir(d);
  return out;
}

// A file of numbered lines, written through fd.
std::string Lines(int count) {
  std::string s;
  char line[32];
  for (int i = 0; i < count; ++i) {
    snprintf(line, sizeof line, "line %08d\n", i);
    s += line;
  }
  return s;
}

bool FileHolds(int fd, const std::string& want) {
  std::string got(want.size() + 1, '\0');
  ssize_t n = pread(fd, got.data(), got.size(), 0);
  return n == static_cast<ssize_t>(want.size()) && got.compare(0, want.size(), want) == 0;
}

// A daemon closes every descriptor it inherited (close_range) and opens its own file, which
// takes the lowest number: the number the heap's memfd had. Meshing, releasing and forking must
// never write to it. (Before the fix the heap kept using its old number and wrote heap pages
// into the file.)
TEST(Host, H1_HeapNeverWritesIntoAFileThatReusedItsDescriptorNumber) {
  char dir[] = "/tmp/mesh-host-XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  std::string path = std::string(dir) + "/data";
  ChildResult r = RunInChild(
      [&] {
        std::vector<std::unique_ptr<Fragmented>> keep;
        CHILD_CHECK(FragmentAndMesh(&keep, 1), 10);
        CHILD_CHECK(syscall(SYS_close_range, 3u, ~0u, 0) == 0, 11);
        int fd = open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        CHILD_CHECK(fd == 3, 12);
        std::string want = Lines(100000);
        CHILD_CHECK(write(fd, want.data(), want.size()) == static_cast<ssize_t>(want.size()), 13);
        for (uint64_t round = 2; round < 8; ++round) {
          CHILD_CHECK(FileHolds(fd, want), 9);
          CHILD_CHECK(FragmentAndMesh(&keep, round), 14);
          if (round % 2 == 0) keep.erase(keep.begin());  // meshed spans freed: file pages released
          pid_t pid = fork();
          if (pid == 0) _exit(keep.back()->intact() ? 0 : 1);
          int status = 0;
          CHILD_CHECK(pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) &&
                      WEXITSTATUS(status) == 0, 15);
        }
        for (auto& f : keep) CHILD_CHECK(f->intact(), 16);
        CHILD_CHECK(FileHolds(fd, want), 17);
        return 0;
      },
      120000);
  unlink(path.c_str());
  rmdir(dir);
  EXPECT_TRUE(r.Exited(0)) << r.Describe();
}

// The heap keeps no descriptor: a program that lists its descriptors (or passes them on, as
// subprocess modules do) sees only its own, after meshing, and in a fork child too.
TEST(Host, H2_TheHeapHoldsNoDescriptor) {
  ChildResult r = RunInChild(
      [&] {
        std::vector<std::string> before = OpenDescriptors();
        std::vector<std::unique_ptr<Fragmented>> keep;
        CHILD_CHECK(FragmentAndMesh(&keep, 11), 18);
        CHILD_CHECK(FragmentAndMesh(&keep, 12), 19);
        std::vector<std::string> after = OpenDescriptors();
        if (after != before) {
          for (auto& s : after) fprintf(stderr, "open after meshing: %s\n", s.c_str());
          return 2;
        }
        pid_t pid = fork();
        if (pid == 0) {
          std::vector<std::unique_ptr<Fragmented>> more;
          bool ok = FragmentAndMesh(&more, 13) && OpenDescriptors() == before;
          _exit(ok ? 0 : 1);
        }
        int status = 0;
        CHILD_CHECK(pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) &&
                    WEXITSTATUS(status) == 0, 20);
        CHILD_CHECK(OpenDescriptors() == before, 21);
        return 0;
      },
      120000);
  EXPECT_TRUE(r.Exited(0)) << r.Describe();
}

// A daemon forks with every descriptor in use. The child must still get its own copy of the
// meshed heap: its writes never reach the parent. (Before the fix the child, unable to open a
// new memfd, warned and shared the meshed pages with the parent.)
TEST(Host, H3_ForkWithNoFreeDescriptorKeepsParentAndChildApart) {
  ChildResult r = RunInChild(
      [&] {
        std::vector<std::unique_ptr<Fragmented>> keep;
        CHILD_CHECK(FragmentAndMesh(&keep, 21), 22);
        CHILD_CHECK(FragmentAndMesh(&keep, 22), 23);
        rlimit lim;
        CHILD_CHECK(getrlimit(RLIMIT_NOFILE, &lim) == 0, 24);
        lim.rlim_cur = 64;
        CHILD_CHECK(setrlimit(RLIMIT_NOFILE, &lim) == 0, 25);
        while (open("/dev/null", O_RDONLY | O_CLOEXEC) >= 0) {
        }
        CHILD_CHECK(errno == EMFILE, 26);
        pid_t pid = fork();
        CHILD_CHECK(pid >= 0, 27);
        if (pid == 0) {
          bool ok = true;
          for (auto& f : keep) ok = ok && f->intact();
          for (auto& f : keep) {
            for (unsigned char* p : f->live) std::memset(p, 0xee, f->size);
          }
          _exit(ok ? 0 : 1);
        }
        int status = 0;
        CHILD_CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0, 28);
        for (auto& f : keep) CHILD_CHECK(f->intact(), 29);
        return 0;
      },
      120000);
  EXPECT_TRUE(r.Exited(0)) << r.Describe();
}

}  // namespace
}  // namespace mesh_api_test
