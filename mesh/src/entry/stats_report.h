// Statistics snapshots and the reports built from them (MALLOCSTATS, malloc_stats, malloc_info,
// mallinfo2, the JSON dump). Field names and labels come from include/mesh/stats_fields.def.
#pragma once

#include <malloc.h>
#include <stdio.h>

#include <cstddef>

#include "mesh/mesh.h"

namespace mesh {

void collectStats(mesh_stats* out);
// MALLOCSTATS-style report: level 1 summary, level 2 adds one line per size class.
void printReport(int fd, int level);
// glibc-compatible malloc_stats() text.
void printMallocStats(int fd);
int writeMallocInfo(FILE* out);
struct mallinfo2 mallinfoFromStats();
size_t releaseFreeMemoryForApi();
// JSON object with every field; returns the length the full text needs (like snprintf).
size_t statsJson(char* buf, size_t len);

}  // namespace mesh
