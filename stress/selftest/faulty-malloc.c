/* A deliberately broken allocator for testing the stress programs themselves: preloaded in front
 * of glibc, it injects one kind of fault, chosen with FAULTY_MODE, and the stress program must
 * then report a failure. Used by the stress-selftest-* ctest tests.
 *
 *   FAULTY_MODE=dup      every FAULTY_EVERY-th malloc returns the most recent block again while
 *                        it is still live (a duplicate hand-out: two objects overlap)
 *   FAULTY_MODE=realloc  every FAULTY_EVERY-th realloc that moves a block copies only half of
 *                        the surviving prefix
 *   FAULTY_MODE=leak     free does nothing (memory grows without bound)
 *
 * FAULTY_EVERY defaults to 10000. Everything else is passed to glibc's __libc_* functions. */
#include <malloc.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

void* __libc_malloc(size_t n);
void* __libc_realloc(void* p, size_t n);
void __libc_free(void* p);

#define EXPORT __attribute__((visibility("default")))

enum mode { MODE_UNSET, MODE_NONE, MODE_DUP, MODE_REALLOC, MODE_LEAK };

static _Atomic int g_mode = MODE_UNSET;
static _Atomic unsigned long g_every = 10000;
static _Atomic unsigned long g_calls = 0;
static _Atomic(void*) g_last = NULL; /* most recent malloc result not yet freed */
static _Atomic size_t g_last_size = 0;
/* Blocks handed out twice whose first free has not come yet. That free is swallowed, so glibc
 * sees one free per block: its own checks (a double free, a tcache link overwritten after the
 * free) must not catch the fault before the stress program does. */
#define MAX_DUPS 64
static _Atomic(void*) g_dups[MAX_DUPS];

static int remember_dup(void* p) {
  for (int i = 0; i < MAX_DUPS; ++i) {
    void* expected = NULL;
    if (atomic_compare_exchange_strong(&g_dups[i], &expected, p)) return 1;
  }
  return 0;
}

static int forget_dup(void* p) {
  for (int i = 0; i < MAX_DUPS; ++i) {
    void* expected = p;
    if (atomic_compare_exchange_strong(&g_dups[i], &expected, NULL)) return 1;
  }
  return 0;
}

/* Reads the environment once (getenv does not allocate). */
static int mode(void) {
  int m = atomic_load(&g_mode);
  if (m != MODE_UNSET) return m;
  const char* s = getenv("FAULTY_MODE");
  const char* every = getenv("FAULTY_EVERY");
  if (every != NULL && atol(every) > 0) atomic_store(&g_every, (unsigned long)atol(every));
  m = MODE_NONE;
  if (s != NULL && strcmp(s, "dup") == 0) m = MODE_DUP;
  if (s != NULL && strcmp(s, "realloc") == 0) m = MODE_REALLOC;
  if (s != NULL && strcmp(s, "leak") == 0) m = MODE_LEAK;
  atomic_store(&g_mode, m);
  return m;
}

/* True on every FAULTY_EVERY-th call. */
static int fault_due(void) {
  return atomic_fetch_add(&g_calls, 1) % atomic_load(&g_every) == atomic_load(&g_every) - 1;
}

EXPORT void* malloc(size_t n) {
  if (mode() == MODE_DUP) {
    void* last = atomic_load(&g_last);
    if (last != NULL && n <= atomic_load(&g_last_size) && fault_due() && remember_dup(last)) return last;
    void* p = __libc_malloc(n);
    atomic_store(&g_last_size, n);
    atomic_store(&g_last, p);
    return p;
  }
  return __libc_malloc(n);
}

EXPORT void free(void* p) {
  if (p == NULL) return;
  void* expected = p;
  atomic_compare_exchange_strong(&g_last, &expected, NULL);
  if (mode() == MODE_LEAK) return;
  if (mode() == MODE_DUP && forget_dup(p)) return; /* the block's other holder frees it */
  __libc_free(p);
}

EXPORT void* realloc(void* p, size_t n) {
  if (mode() != MODE_REALLOC || p == NULL || n == 0 || !fault_due()) return __libc_realloc(p, n);
  size_t old = malloc_usable_size(p);
  void* q = __libc_malloc(n);
  if (q == NULL) return NULL;
  size_t keep = old < n ? old : n;
  memcpy(q, p, keep / 2); /* the fault: the second half of the prefix is lost */
  memset((char*)q + keep / 2, 0, keep - keep / 2);
  __libc_free(p);
  return q;
}
