/* A C program that uses an installed libmesh through pkg-config (see the Makefile beside it;
 * ../cmake-c-consumer builds the same file with CMake).
 * It checks that its allocations go to libmesh (the allocation counter rises by at least as many
 * calls as it makes, including allocations made inside libc) and uses the extension API.
 * Prints "mesh-pc-consumer: OK ..." and exits 0 on success, exits 1 otherwise. */
#define _GNU_SOURCE
#include <mesh/mesh.h>

#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BLOCKS 1000

static int failures;

static void check(int ok, const char* what) {
  if (!ok) {
    fprintf(stderr, "mesh-pc-consumer: FAILED: %s\n", what);
    ++failures;
  }
}

static mesh_stats snapshot(void) {
  mesh_stats s;
  check(mesh_get_stats(&s) == 0, "mesh_get_stats returns 0");
  return s;
}

int main(void) {
  static void* blocks[BLOCKS];
  static char* copies[BLOCKS];
  mesh_stats before = snapshot();

  for (int i = 0; i < BLOCKS; ++i) {
    size_t size = 8 + (size_t)(i % 64) * 24;
    blocks[i] = calloc(1, size);
    check(blocks[i] != NULL, "calloc returns memory");
    copies[i] = strdup("made by libc"); /* libc's own call to malloc */
    check(copies[i] != NULL, "strdup returns memory");
  }
  mesh_stats during = snapshot();
  check(during.allocs >= before.allocs + 2 * BLOCKS, "allocs counts calloc and libc's strdup");

  for (int i = 0; i < BLOCKS; ++i) {
    free(copies[i]);
    free(blocks[i]);
  }
  mesh_stats after = snapshot();
  check(after.frees >= during.frees + 2 * BLOCKS, "frees counts every free");

  long level = -1;
  check(mesh_get_option("stats", &level) == 0 && level >= 0, "mesh_get_option(stats)");
  check(mesh_set_option("stats", 99) == EINVAL, "an out-of-range value gives EINVAL");

  size_t meshes = mesh_compact();
  char json[4096];
  size_t need = mesh_stats_json(json, sizeof json);
  check(need < sizeof json && json[0] == '{', "mesh_stats_json fills the buffer");

  Dl_info info;
  const char* origin = dladdr((void*)&malloc, &info) != 0 && info.dli_fname ? info.dli_fname : "?";
  printf("malloc from: %s\n", origin);
  printf("stats: %s\n", json);
  printf("compaction: %zu meshes\n", meshes);
  if (failures != 0) {
    fprintf(stderr, "mesh-pc-consumer: %d check(s) failed\n", failures);
    return 1;
  }
  printf("mesh-pc-consumer: OK (malloc is libmesh's: allocs rose by %llu)\n",
         (unsigned long long)(after.allocs - before.allocs));
  return 0;
}
