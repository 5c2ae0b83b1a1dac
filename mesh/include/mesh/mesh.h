/* Public extension API of libmesh, a compacting drop-in malloc.
 *
 * The malloc family itself (malloc, free, calloc, realloc, posix_memalign, ... and every C++
 * operator new/delete) is exported under the standard names; this header adds what the standard
 * API cannot say: statistics, run-time options and on-demand compaction. All functions are safe
 * to call from any thread and never allocate. */
#ifndef MESH_MESH_H
#define MESH_MESH_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MESH_API __attribute__((visibility("default")))

/* Statistics, one uint64_t per field of mesh/stats_fields.def. */
typedef struct mesh_stats {
#define MESH_STAT(name, label, doc) uint64_t name;
#include "mesh/stats_fields.def"
#undef MESH_STAT
} mesh_stats;

/* Fills *out with a consistent snapshot. Returns 0, or EINVAL when out is NULL. */
MESH_API int mesh_get_stats(mesh_stats* out);

/* Writes the statistics as one JSON object into buf (NUL-terminated, truncated to len).
 * Returns the length the full text needs, excluding the NUL, like snprintf. */
MESH_API size_t mesh_stats_json(char* buf, size_t len);

/* Prints the MALLOCSTATS report to fd: level 1 summary, level 2 adds one line per size class. */
MESH_API void mesh_print_stats(int fd, int level);

/* Options by name, as listed in mesh/options.def without the MESH_ prefix, e.g. "period_ms".
 * Return 0, EINVAL for an unknown name or out-of-range value (nothing changes then). */
MESH_API int mesh_set_option(const char* name, long value);
MESH_API int mesh_get_option(const char* name, long* value);

/* Runs a full compaction (every size class) now and returns the number of meshes it made.
 * Also returns free memory to the OS. */
MESH_API size_t mesh_compact(void);

/* Returns freed memory to the OS now (as malloc_trim(0)); returns the bytes released. */
MESH_API size_t mesh_release_free_memory(void);

#ifdef __cplusplus
}
#endif

#endif /* MESH_MESH_H */
