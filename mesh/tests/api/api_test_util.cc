// Helpers of the API conformance tests: extension-API lookup, patterns, child processes.
#include "api_test_util.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <random>

extern char** environ;

namespace mesh_api_test {
namespace {

MeshApi LoadMeshApi(bool* found) {
  MeshApi api{};
  void* stats = dlsym(RTLD_DEFAULT, "mesh_get_stats");
  *found = stats != nullptr;
  if (!*found) return api;
  api.get_stats = reinterpret_cast<int (*)(mesh_stats*)>(stats);
  api.stats_json = reinterpret_cast<size_t (*)(char*, size_t)>(dlsym(RTLD_DEFAULT, "mesh_stats_json"));
  api.print_stats = reinterpret_cast<void (*)(int, int)>(dlsym(RTLD_DEFAULT, "mesh_print_stats"));
  api.set_option = reinterpret_cast<int (*)(const char*, long)>(dlsym(RTLD_DEFAULT, "mesh_set_option"));
  api.get_option = reinterpret_cast<int (*)(const char*, long*)>(dlsym(RTLD_DEFAULT, "mesh_get_option"));
  api.compact = reinterpret_cast<size_t (*)()>(dlsym(RTLD_DEFAULT, "mesh_compact"));
  api.release_free_memory =
      reinterpret_cast<size_t (*)()>(dlsym(RTLD_DEFAULT, "mesh_release_free_memory"));
  return api;
}

int64_t NowMs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

// Reads fd until EOF or the deadline; false on timeout.
bool DrainUntil(int fd, std::string* out, int64_t deadline_ms) {
  char buf[4096];
  for (;;) {
    int64_t left = deadline_ms - NowMs();
    if (left <= 0) return false;
    pollfd pfd{fd, POLLIN, 0};
    int r = poll(&pfd, 1, int(left));
    if (r < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    if (r == 0) return false;
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      return true;
    }
    if (n == 0) return true;
    if (out->size() < (4u << 20)) out->append(buf, size_t(n));
  }
}

ChildResult FinishChild(pid_t pid, int read_fd, int timeout_ms) {
  ChildResult res;
  int64_t deadline = NowMs() + timeout_ms;
  bool eof = DrainUntil(read_fd, &res.output, deadline);
  close(read_fd);
  int left = int(deadline - NowMs());
  if (!eof || !WaitPidTimeout(pid, &res.status, left > 0 ? left : 0)) {
    res.timed_out = true;
    kill(pid, SIGKILL);
    waitpid(pid, &res.status, 0);
  }
  return res;
}

}  // namespace

const MeshApi* Mesh() {
  static bool found = false;
  static const MeshApi api = LoadMeshApi(&found);
  return found ? &api : nullptr;
}

mesh_stats Stats() {
  mesh_stats s{};
  if (const MeshApi* m = Mesh()) m->get_stats(&s);
  return s;
}

Fragmented::Fragmented(size_t n, uint64_t seed, size_t objSize) : size(objSize) {
  std::mt19937_64 rng(seed);
  std::vector<unsigned char*> all(n);
  for (size_t i = 0; i < n; ++i) {
    all[i] = static_cast<unsigned char*>(malloc(size));
    std::memset(all[i], static_cast<int>(i & 0xff), size);
  }
  for (size_t i = 0; i < n; ++i) {
    if (rng() % 10 == 0) {
      live.push_back(all[i]);
      std::memset(all[i], static_cast<int>(live.size() & 0xff), size);
    } else {
      free(all[i]);
    }
  }
}

Fragmented::~Fragmented() {
  for (auto* p : live) free(p);
}

bool Fragmented::intact() const {
  for (size_t i = 0; i < live.size(); ++i) {
    for (size_t j = 0; j < size; ++j) {
      if (live[i][j] != static_cast<unsigned char>((i + 1) & 0xff)) return false;
    }
  }
  return true;
}

bool ChildResult::Exited(int code) const {
  return !timed_out && WIFEXITED(status) && WEXITSTATUS(status) == code;
}

bool ChildResult::Signaled(int sig) const {
  return !timed_out && WIFSIGNALED(status) && WTERMSIG(status) == sig;
}

std::string ChildResult::Describe() const {
  std::string s;
  if (timed_out) {
    s = "timed out (killed)";
  } else if (WIFEXITED(status)) {
    s = "exit code " + std::to_string(WEXITSTATUS(status));
  } else if (WIFSIGNALED(status)) {
    s = "killed by signal " + std::to_string(WTERMSIG(status)) + " (" + strsignal(WTERMSIG(status)) + ")";
  } else {
    s = "status " + std::to_string(status);
  }
  std::string out = output.size() > 4000 ? output.substr(output.size() - 4000) : output;
  return s + "; output:\n" + out;
}

bool WaitPidTimeout(pid_t pid, int* status, int timeout_ms) {
  int64_t deadline = NowMs() + timeout_ms;
  for (;;) {
    pid_t r = waitpid(pid, status, WNOHANG);
    if (r == pid) return true;
    if (r < 0 && errno != EINTR) return true;  // not our child any more: nothing to wait for
    if (NowMs() >= deadline) return false;
    struct timespec ts = {0, 1000000};
    nanosleep(&ts, nullptr);
  }
}

bool UffdExpected() {
  const char* env = getenv("MESH_UFFD");
  if (geteuid() != 0 || (env != nullptr && strcmp(env, "0") == 0)) return false;
  struct utsname u {};
  int major = 0, minor = 0;
  if (uname(&u) != 0 || sscanf(u.release, "%d.%d", &major, &minor) != 2) return false;
  return major > 5 || (major == 5 && minor >= 19);
}

ChildResult RunInChild(const std::function<int()>& body, int timeout_ms) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) {
    ChildResult r;
    r.timed_out = true;
    r.output = "pipe2 failed";
    return r;
  }
  std::fflush(stdout);
  std::fflush(stderr);
  pid_t pid = fork();
  if (pid == 0) {
    dup2(fds[1], 1);
    dup2(fds[1], 2);
    close(fds[0]);
    close(fds[1]);
    int rc = body();
    std::fflush(stdout);
    std::fflush(stderr);
    _exit(rc);
  }
  close(fds[1]);
  if (pid < 0) {
    close(fds[0]);
    ChildResult r;
    r.timed_out = true;
    r.output = std::string("fork failed: ") + strerror(errno);
    return r;
  }
  return FinishChild(pid, fds[0], timeout_ms);
}

ChildResult RunProgram(const std::vector<std::string>& argv, int timeout_ms,
                       const std::vector<std::string>& extra_env,
                       const std::function<void()>& before_exec) {
  // Everything the child needs is prepared before fork: it only calls async-signal-safe code
  // (plus before_exec, which the caller keeps simple).
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  std::vector<std::string> env_store;
  for (char** e = environ; *e; ++e) {
    bool overridden = false;
    for (const std::string& x : extra_env) {
      size_t eq = x.find('=');
      if (eq != std::string::npos && std::strncmp(*e, x.c_str(), eq + 1) == 0) overridden = true;
      if (eq == std::string::npos && x.size() > 1 && x[0] == '-' &&
          std::strncmp(*e, x.c_str() + 1, x.size() - 1) == 0 && (*e)[x.size() - 1] == '=') {
        overridden = true;  // "-K": K is removed
      }
    }
    if (!overridden) env_store.emplace_back(*e);
  }
  for (const std::string& x : extra_env) {
    if (x.find('=') != std::string::npos) env_store.push_back(x);
  }
  std::vector<char*> env;
  for (std::string& e : env_store) env.push_back(e.data());
  env.push_back(nullptr);

  int fds[2];
  ChildResult r;
  if (pipe2(fds, O_CLOEXEC) != 0) {
    r.timed_out = true;
    r.output = "pipe2 failed";
    return r;
  }
  std::fflush(stdout);
  std::fflush(stderr);
  pid_t pid = fork();
  if (pid == 0) {
    dup2(fds[1], 1);
    dup2(fds[1], 2);
    if (before_exec) before_exec();
    execve(args[0], args.data(), env.data());
    static const char msg[] = "execve failed\n";
    ssize_t ignored = write(2, msg, sizeof msg - 1);
    (void)ignored;
    _exit(126);
  }
  close(fds[1]);
  if (pid < 0) {
    close(fds[0]);
    r.timed_out = true;
    r.output = "fork failed";
    return r;
  }
  return FinishChild(pid, fds[0], timeout_ms);
}

std::string FindInPath(const char* name) {
  const char* path = getenv("PATH");
  std::string dirs = path ? path : "/usr/local/bin:/usr/bin:/bin";
  size_t start = 0;
  while (start <= dirs.size()) {
    size_t end = dirs.find(':', start);
    if (end == std::string::npos) end = dirs.size();
    std::string candidate = dirs.substr(start, end - start) + "/" + name;
    if (end > start && access(candidate.c_str(), X_OK) == 0) return candidate;
    start = end + 1;
  }
  return "";
}

size_t CurrentRssBytes() {
  FILE* f = std::fopen("/proc/self/statm", "re");
  if (!f) return 0;
  unsigned long size = 0, resident = 0;
  int n = std::fscanf(f, "%lu %lu", &size, &resident);
  std::fclose(f);
  return n == 2 ? resident * size_t(sysconf(_SC_PAGESIZE)) : 0;
}

std::string AddrRegex(const void* p) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%lx", static_cast<unsigned long>(reinterpret_cast<uintptr_t>(p)));
  return std::string("0x0*") + buf;
}

std::string CaptureStderr(const std::function<void()>& fn) {
  std::fflush(stderr);
  FILE* tmp = std::tmpfile();
  if (!tmp) return "";
  int saved = dup(2);
  dup2(fileno(tmp), 2);
  fn();
  std::fflush(stderr);
  dup2(saved, 2);
  close(saved);
  std::string text;
  std::rewind(tmp);
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, tmp)) > 0) text.append(buf, n);
  std::fclose(tmp);
  return text;
}

const size_t kPage = size_t(sysconf(_SC_PAGESIZE));

std::vector<size_t> ImpossibleSizes() {
  return {SIZE_MAX,
          SIZE_MAX - 1,
          SIZE_MAX - 15,
          SIZE_MAX - 16,
          SIZE_MAX - 4095,
          SIZE_MAX - 4096,
          SIZE_MAX - (2 * kMiB - 1),
          size_t(PTRDIFF_MAX),
          size_t(PTRDIFF_MAX) + 1,
          size_t(1) << 62,
          size_t(1) << 48,
          kTiB};
}

}  // namespace mesh_api_test
