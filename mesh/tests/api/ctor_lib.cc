// Shared object linked into mesh_api_startup_test: allocates, dlopens and calls dlsym (which
// callocs its error buffer) from its constructor. It does not link libmesh itself, so its
// constructor may well run before libmesh's own initialisation.
#include <dlfcn.h>

#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

struct CtorResults {
  char* plain = nullptr;
  char* dup = nullptr;
  char* zeroed = nullptr;
  void* aligned = nullptr;
  int aligned_rc = -1;
  void* libm = nullptr;
  double cos_zero = -1;
  bool dlerror_seen = false;
  std::vector<std::string>* strings = nullptr;
};

CtorResults g_results;

// Dynamic initialisation of a global object: allocates too.
std::string g_static_string(300, 'y');

__attribute__((constructor)) void AllocateInLibraryConstructor() {
  g_results.plain = static_cast<char*>(malloc(1000));
  if (g_results.plain) memset(g_results.plain, 0x42, 1000);
  g_results.dup = strdup("allocated in a library constructor");
  g_results.zeroed = static_cast<char*>(calloc(100, 10));
  g_results.aligned_rc = posix_memalign(&g_results.aligned, 256, 300);
  g_results.dlerror_seen = dlsym(RTLD_DEFAULT, "mesh_api_no_such_symbol_in_ctor") == nullptr &&
                           dlerror() != nullptr;
  g_results.libm = dlopen("libm.so.6", RTLD_NOW);
  if (g_results.libm) {
    auto cosine = reinterpret_cast<double (*)(double)>(dlsym(g_results.libm, "cos"));
    if (cosine) g_results.cos_zero = cosine(0.0);
  }
  g_results.strings = new std::vector<std::string>();
  for (int i = 0; i < 100; ++i) g_results.strings->push_back(std::string(size_t(50 + i), char('a' + i % 26)));
}

}  // namespace

// Checks what the constructor made and frees it. 0 when all is well, else the failed step.
extern "C" __attribute__((visibility("default"))) int mesh_api_ctorlib_check() {
  CtorResults& r = g_results;
  if (!r.plain) return 1;
  for (int i = 0; i < 1000; ++i)
    if (r.plain[i] != 0x42) return 2;
  if (!r.dup || strcmp(r.dup, "allocated in a library constructor") != 0) return 3;
  if (!r.zeroed) return 4;
  for (int i = 0; i < 1000; ++i)
    if (r.zeroed[i] != 0) return 5;
  if (r.aligned_rc != 0 || (reinterpret_cast<unsigned long>(r.aligned) & 255) != 0) return 6;
  if (!r.dlerror_seen) return 7;
  if (!r.libm || r.cos_zero != 1.0) return 8;
  if (!r.strings || r.strings->size() != 100) return 9;
  for (int i = 0; i < 100; ++i)
    if ((*r.strings)[size_t(i)] != std::string(size_t(50 + i), char('a' + i % 26))) return 10;
  if (g_static_string != std::string(300, 'y')) return 11;
  free(r.plain);
  free(r.dup);
  free(r.zeroed);
  free(r.aligned);
  delete r.strings;
  dlclose(r.libm);
  r = CtorResults();
  g_static_string.assign(5000, 'z');  // reallocates memory first allocated before main
  return 0;
}
