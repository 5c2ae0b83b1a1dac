// kvstore: the footprint of a long-lived cache server after its data changed shape.
//
// Models a Redis-like key-value store in one thread, in four phases:
//   1. insert --keys keys: a malloc'd node per key in a chained hash table (the bucket array is
//      malloc'd too), a malloc'd key string of --key-min-size..--key-max-size bytes and a value
//      of --min-size..--max-size bytes;
//   2. rewrite every value, in random order, with a size from --new-min-size..--new-max-size
//      (free + malloc as a SET does; realloc with --realloc), so the first size classes empty
//      and others fill up;
//   3. delete a random --delete-pct percent of the keys: the survivors pin down node, key and
//      value spans that an ordinary allocator cannot return;
//   4. serve for --serve-seconds (or --serve-ops operations): --get-pct gets (look the key up,
//      read and verify the value), --set-pct sets of existing keys with a new size, the rest
//      half inserts of new keys and half deletes. No compaction API is called, so a compacting
//      allocator must work on its own (libmesh: its background thread, paced by the memory
//      meshing can win); --compact calls mesh_compact() (libmesh, found with dlsym) or
//      malloc_trim(0) once between phases 3 and 4.
// Every value holds a pattern derived from its key, its version and its length, checked on
// every get and for every key before exit; a mismatch stops the program with status 1.
//
// Output (stdout, key=value):
//   malloc_from       file malloc resolved into
//   keys live_keys gets sets inserts deletes    counts (the last four: while serving)
//   live_bytes        requested bytes still allocated: nodes, keys, values, bucket array
//   baseline_pss_kb insert_pss_kb full_pss_kb delete_pss_kb   PSS before phase 1, after 1-3
//   compact compact_ms compact_pss_kb meshes    the --compact call, if any
//   serve_seconds serve_ops ops_per_sec ns_per_op              phase 4
//   cpu_ns_per_op     CPU time of the serving thread per operation (less sensitive to other
//                     load on the machine than ns_per_op)
//   pss_kb rss_kb     at the end of phase 4
//   heap_pss_kb       pss_kb - baseline_pss_kb
//   pss_per_live      pss_kb * 1024 / live_bytes; heap_pss_per_live the same without baseline
//   maps              lines of /proc/self/maps
//   mesh_count mesh_pause_max_ns mesh_pause_p99_ns meshed_bytes_total   (only under libmesh)
//   total_seconds     the whole run
// Progress goes to stderr unless --quiet. The table of live key ids used to pick random keys
// lives in its own mmap, outside the heap under test.
#include <malloc.h>
#include <sys/mman.h>

#include "workload_common.h"

namespace {

constexpr const char* kProgram = "kvstore";
constexpr size_t kKeyLimit = 64;           // longest key (a stack buffer holds one)
constexpr uint64_t kIdLimit = 1ULL << 48;  // ids are written as 12 hex digits

struct Config {
  uint64_t keys = 1'000'000;
  uint64_t key_min = 16;
  uint64_t key_max = 40;
  uint64_t min_size = 64;
  uint64_t max_size = 256;
  uint64_t new_min_size = 200;
  uint64_t new_max_size = 600;
  uint64_t delete_pct = 85;
  uint64_t serve_seconds = 3;
  uint64_t serve_ops = 0;
  uint64_t get_pct = 70;
  uint64_t set_pct = 26;
  uint64_t seed = 42;
  bool use_realloc = false;
  bool compact = false;
  bool quiet = false;
  bool mesh_report = false;
};

Config parse(int argc, char** argv) {
  Config c;
  perfw::Options o(kProgram,
                   "A cache server's life: insert keys, change every value's size, delete most "
                   "keys, keep serving; prints the PSS left and the serving throughput.");
  o.number("keys", "keys inserted in phase 1", c.keys, 1, 100'000'000);
  o.number("key-min-size", "shortest key in bytes", c.key_min, 16, kKeyLimit);
  o.number("key-max-size", "longest key in bytes", c.key_max, 16, kKeyLimit);
  o.number("min-size", "smallest value in phase 1, bytes", c.min_size, 1, 1 << 20);
  o.number("max-size", "largest value in phase 1, bytes", c.max_size, 1, 1 << 20);
  o.number("new-min-size", "smallest value from phase 2 on, bytes", c.new_min_size, 1, 1 << 20);
  o.number("new-max-size", "largest value from phase 2 on, bytes", c.new_max_size, 1, 1 << 20);
  o.number("delete-pct", "percent of the keys deleted in phase 3", c.delete_pct, 0, 100);
  o.number("serve-seconds", "length of the serving phase", c.serve_seconds, 0, 86400);
  o.number("serve-ops", "stop serving after this many operations (0: no limit)", c.serve_ops, 0,
           1ULL << 40);
  o.number("get-pct", "percent of serving operations that are gets", c.get_pct, 0, 100);
  o.number("set-pct", "percent that are sets (the rest: half inserts, half deletes)", c.set_pct, 0,
           100);
  o.number("seed", "random seed", c.seed, 0, UINT64_MAX);
  o.flag("realloc", "change a value's size with realloc instead of free + malloc", c.use_realloc);
  o.flag("compact", "call mesh_compact() or malloc_trim(0) once after the deletes", c.compact);
  o.flag("quiet", "no progress lines on stderr", c.quiet);
  o.flag("mesh-report", "libmesh only: print its detailed statistics (MALLOCSTATS=2) to stderr "
         "when serving ends", c.mesh_report);
  o.parse(argc, argv);
  if (c.key_max < c.key_min) o.usage_error("--key-max-size must not be below --key-min-size");
  if (c.max_size < c.min_size) o.usage_error("--max-size must not be below --min-size");
  if (c.new_max_size < c.new_min_size)
    o.usage_error("--new-max-size must not be below --new-min-size");
  if (c.get_pct + c.set_pct > 100) o.usage_error("--get-pct plus --set-pct exceed 100");
  return c;
}

// --- keys and values ----------------------------------------------------------------------------

// The splitmix64 finaliser (harness/rng.h): a cheap, well-mixed function of one word.
using harness::mix64;

// A key is a function of its id: "key:" and the id in 12 hex digits (unique per id), then
// ":" and filler letters up to a length that is also a function of the id. So a key never has
// to be stored outside the heap to be looked up again.
size_t key_length(const Config& c, uint64_t id) {
  return c.key_min + mix64(id ^ 0x6b65796c656eULL) % (c.key_max - c.key_min + 1);
}

size_t make_key(const Config& c, uint64_t id, char* out) {
  static const char kHex[] = "0123456789abcdef";
  size_t len = key_length(c, id);
  std::memcpy(out, "key:", 4);
  for (int i = 0; i < 12; ++i) out[4 + i] = kHex[(id >> (44 - 4 * i)) & 0xf];
  if (len > 16) out[16] = ':';
  uint64_t filler = 0;
  for (size_t i = 17; i < len; ++i) {
    if (i % 8 == 1) filler = mix64(id * 8 + i / 8);  // one word per 8 letters
    out[i] = static_cast<char>('a' + (filler & 0xff) % 26);
    filler >>= 8;
  }
  return len;
}

uint32_t hash_key(const char* key, size_t len) {
  uint64_t h = len * harness::kGolden;
  size_t i = 0;
  for (; i + 8 <= len; i += 8) {
    uint64_t w;
    std::memcpy(&w, key + i, 8);
    h = mix64(h ^ w);
  }
  uint64_t tail = 0;
  std::memcpy(&tail, key + i, len - i);
  return static_cast<uint32_t>(mix64(h ^ tail));
}

// One key-value pair. The value's bytes are determined by (id, version, value_len).
struct Node {
  Node* next;
  char* key;
  unsigned char* value;
  uint64_t id;
  uint32_t hash;  // low half of hash_key(); picks the bucket
  uint32_t key_len;
  uint32_t value_len;
  uint32_t version;  // bumped on every write of the value
};

uint64_t value_seed(const Node& n) {
  return mix64(n.id * harness::kGolden + n.version) ^ n.value_len;
}

inline uint64_t value_word(uint64_t seed, size_t i) {
  return seed ^ (i * 0xd6e8feb86659fd93ULL);
}

void stamp_value(const Node& n) {
  uint64_t seed = value_seed(n);
  size_t words = n.value_len / 8, i = 0;
  for (; i < words; ++i) {
    uint64_t w = value_word(seed, i);
    std::memcpy(n.value + 8 * i, &w, 8);
  }
  uint64_t w = value_word(seed, i);
  std::memcpy(n.value + 8 * i, &w, n.value_len % 8);
}

bool value_intact(const Node& n) {
  uint64_t seed = value_seed(n);
  size_t words = n.value_len / 8, i = 0;
  for (; i < words; ++i) {
    uint64_t got;
    std::memcpy(&got, n.value + 8 * i, 8);
    if (got != value_word(seed, i)) return false;
  }
  uint64_t want = value_word(seed, i), got = want;
  std::memcpy(&got, n.value + 8 * i, n.value_len % 8);
  return got == want;
}

void* checked_malloc(size_t n) {
  void* p = std::malloc(n);
  if (p == nullptr) perfw::die(kProgram, "malloc returned NULL");
  return p;
}

// --- the hash table -----------------------------------------------------------------------------

// Chained hash table with a power-of-two bucket array that doubles when the keys outnumber the
// buckets (as Redis's dict grows at load factor 1; it is never shrunk here). Owns nothing but
// the bucket array; live_bytes counts every byte it and its caller have requested.
class Table {
 public:
  explicit Table(uint64_t expected) {
    size_t n = 1024;
    while (n < expected) n *= 2;
    resize(n);
  }
  ~Table() { std::free(buckets_); }
  Table(const Table&) = delete;
  Table& operator=(const Table&) = delete;

  size_t size() const { return size_; }
  size_t bucket_bytes() const { return (mask_ + 1) * sizeof(Node*); }

  Node* find(const char* key, size_t len, uint32_t h) const {
    for (Node* n = buckets_[h & mask_]; n != nullptr; n = n->next)
      if (same_key(*n, key, len, h)) return n;
    return nullptr;
  }

  void insert(Node* n) {
    if (size_ + 1 > mask_ + 1) resize(2 * (mask_ + 1));
    Node*& head = buckets_[n->hash & mask_];
    n->next = head;
    head = n;
    ++size_;
  }

  // Unlinks and returns the node of key, or nullptr.
  Node* remove(const char* key, size_t len, uint32_t h) {
    for (Node** link = &buckets_[h & mask_]; *link != nullptr; link = &(*link)->next) {
      Node* n = *link;
      if (same_key(*n, key, len, h)) {
        *link = n->next;
        --size_;
        return n;
      }
    }
    return nullptr;
  }

  template <typename Fn>
  void for_each(Fn&& fn) const {
    for (size_t b = 0; b <= mask_; ++b)
      for (Node *n = buckets_[b], *next; n != nullptr; n = next) {
        next = n->next;  // fn may free n
        fn(n);
      }
  }

 private:
  static bool same_key(const Node& n, const char* key, size_t len, uint32_t h) {
    return n.hash == h && n.key_len == len && std::memcmp(n.key, key, len) == 0;
  }

  void resize(size_t buckets) {
    auto** fresh = static_cast<Node**>(std::calloc(buckets, sizeof(Node*)));
    if (fresh == nullptr) perfw::die(kProgram, "calloc of the bucket array returned NULL");
    if (buckets_ != nullptr) {
      for_each([&](Node* n) {
        Node*& head = fresh[n->hash & (buckets - 1)];
        n->next = head;
        head = n;
      });
      std::free(buckets_);
    }
    buckets_ = fresh;
    mask_ = buckets - 1;
  }

  Node** buckets_ = nullptr;
  size_t mask_ = 0;
  size_t size_ = 0;
};

// --- the store ----------------------------------------------------------------------------------

struct Counts {
  uint64_t gets = 0, sets = 0, inserts = 0, deletes = 0;
};

// The table plus the ids of the live keys (to pick random keys) and the requested bytes.
class Store {
 public:
  Store(const Config& c, uint64_t capacity) : c_(c), table_(c.keys), capacity_(capacity) {
    ids_bytes_ = capacity * sizeof(uint64_t);
    void* m = mmap(nullptr, ids_bytes_, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED) perfw::die(kProgram, "cannot map the table of live ids");
    ids_ = static_cast<uint64_t*>(m);
  }
  ~Store() { munmap(ids_, ids_bytes_); }
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  uint64_t live() const { return live_; }
  uint64_t live_bytes() const { return node_bytes_ + table_.bucket_bytes(); }
  bool full() const { return live_ == capacity_ || next_id_ == kIdLimit; }

  // Inserts a new key with a value of a size in [lo, hi].
  void insert(perfw::Rng& rng, uint64_t lo, uint64_t hi) {
    uint64_t id = next_id_++;
    size_t klen = key_length(c_, id);
    auto* n = static_cast<Node*>(checked_malloc(sizeof(Node)));
    n->key = static_cast<char*>(checked_malloc(klen));
    make_key(c_, id, n->key);
    n->id = id;
    n->hash = hash_key(n->key, klen);
    n->key_len = static_cast<uint32_t>(klen);
    n->version = 0;
    n->value_len = static_cast<uint32_t>(rng.between(lo, hi));
    n->value = static_cast<unsigned char*>(checked_malloc(n->value_len));
    stamp_value(*n);
    table_.insert(n);
    ids_[live_++] = id;
    node_bytes_ += sizeof(Node) + klen + n->value_len;
  }

  // The node of the live key in slot i of the id table, found through the hash table as a
  // server finds a key it was sent.
  Node* lookup(size_t i) const {
    char key[kKeyLimit];
    size_t len = make_key(c_, ids_[i], key);
    Node* n = table_.find(key, len, hash_key(key, len));
    if (n == nullptr || n->id != ids_[i]) perfw::die(kProgram, "a live key is missing");
    return n;
  }

  void get(size_t i) const {
    if (!value_intact(*lookup(i))) perfw::die(kProgram, "a value was corrupted (get)");
  }

  // Gives the value of the live key in slot i a new size in [lo, hi] and new contents.
  void set(size_t i, perfw::Rng& rng, uint64_t lo, uint64_t hi) {
    Node* n = lookup(i);
    auto len = static_cast<uint32_t>(rng.between(lo, hi));
    if (c_.use_realloc) {
      void* p = std::realloc(n->value, len);
      if (p == nullptr) perfw::die(kProgram, "realloc returned NULL");
      n->value = static_cast<unsigned char*>(p);
    } else {
      std::free(n->value);
      n->value = static_cast<unsigned char*>(checked_malloc(len));
    }
    node_bytes_ = node_bytes_ - n->value_len + len;
    n->value_len = len;
    ++n->version;
    stamp_value(*n);
  }

  // Deletes the live key in slot i; the last slot's id moves into slot i.
  void erase(size_t i) {
    char key[kKeyLimit];
    size_t len = make_key(c_, ids_[i], key);
    Node* n = table_.remove(key, len, hash_key(key, len));
    if (n == nullptr) perfw::die(kProgram, "a live key is missing (delete)");
    node_bytes_ -= sizeof(Node) + len + n->value_len;
    std::free(n->value);
    std::free(n->key);
    std::free(n);
    ids_[i] = ids_[--live_];
  }

  void shuffle(perfw::Rng& rng) {
    for (uint64_t i = live_; i > 1; --i) std::swap(ids_[i - 1], ids_[rng.below(i)]);
  }

  // Gives back the pages of the id table above the live ids (they are not the heap's).
  void trim_ids() const {
    size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    size_t keep = (live_ * sizeof(uint64_t) + page - 1) / page * page;
    if (keep < ids_bytes_)
      madvise(reinterpret_cast<char*>(ids_) + keep, ids_bytes_ - keep, MADV_DONTNEED);
  }

  // Checks every key and value; dies on the first problem.
  void verify() const {
    if (table_.size() != live_) perfw::die(kProgram, "the table and the live ids disagree");
    for (uint64_t i = 0; i < live_; ++i)
      if (!value_intact(*lookup(i))) perfw::die(kProgram, "a value was corrupted (final check)");
  }

  void clear() {
    table_.for_each([](Node* n) {
      std::free(n->value);
      std::free(n->key);
      std::free(n);
    });
  }

 private:
  const Config& c_;
  Table table_;
  uint64_t* ids_ = nullptr;
  size_t ids_bytes_ = 0;
  uint64_t capacity_;
  uint64_t live_ = 0;
  uint64_t next_id_ = 0;
  uint64_t node_bytes_ = 0;  // nodes, keys and values
};

// --- phases -------------------------------------------------------------------------------------

class Progress {
 public:
  Progress(bool quiet, long baseline_pss) : quiet_(quiet), baseline_(baseline_pss) {}
  // Prints what a phase did and returns the PSS after it.
  long phase(const char* what, double since, const Store& s) const {
    long pss = perfw::smaps_rollup_kib("Pss");
    if (!quiet_) {
      std::fprintf(stderr,
                   "%s: %-8s %.2f s, %" PRIu64
                   " keys, live %.1f MiB, PSS %.1f MiB "
                   "(heap %.1f MiB)\n",
                   kProgram, what, perfw::now_seconds() - since, s.live(),
                   static_cast<double>(s.live_bytes()) / (1 << 20), pss / 1024.0,
                   (pss - baseline_) / 1024.0);
    }
    return pss;
  }

 private:
  bool quiet_;
  long baseline_;
};

struct CompactResult {
  const char* how = "none";
  double ms = 0;
  long long meshes = -1;
};

CompactResult compact_now() {
  CompactResult r;
  double t0 = perfw::now_seconds();
  using CompactFn = size_t (*)();
  auto fn = reinterpret_cast<CompactFn>(dlsym(RTLD_DEFAULT, "mesh_compact"));
  if (fn != nullptr) {
    r.how = "mesh_compact";
    r.meshes = static_cast<long long>(fn());
  } else {
    r.how = "malloc_trim";
    malloc_trim(0);
  }
  r.ms = (perfw::now_seconds() - t0) * 1e3;
  return r;
}

struct ServeResult {
  Counts counts;
  uint64_t ops = 0;
  double seconds = 0;
  double cpu_seconds = 0;  // CPU time of the serving thread (user + system)
};

double thread_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

ServeResult serve(const Config& c, Store& s, perfw::Rng& rng) {
  ServeResult r;
  if (c.serve_seconds == 0 && c.serve_ops == 0) return r;
  const double t0 = perfw::now_seconds();
  const double cpu0 = thread_cpu_seconds();
  const uint64_t limit = c.serve_ops == 0 ? UINT64_MAX : c.serve_ops;
  const uint64_t mutate = c.get_pct + c.set_pct;
  for (;;) {
    if ((r.ops & 255) == 0) {
      r.seconds = perfw::now_seconds() - t0;
      if (c.serve_seconds != 0 && r.seconds >= static_cast<double>(c.serve_seconds)) break;
    }
    if (r.ops == limit) break;
    ++r.ops;
    uint64_t pick = rng.next();
    uint64_t kind = (pick >> 40) % 100;
    bool insert = kind >= mutate && (pick >> 39) % 2 == 0;
    if ((insert || s.live() == 0) && !s.full()) {
      s.insert(rng, c.new_min_size, c.new_max_size);
      ++r.counts.inserts;
      continue;
    }
    if (s.live() == 0) break;  // nothing to serve and no room for a key
    size_t slot = pick % s.live();
    if (kind < c.get_pct) {
      s.get(slot);
      ++r.counts.gets;
    } else if (kind < mutate) {
      s.set(slot, rng, c.new_min_size, c.new_max_size);
      ++r.counts.sets;
    } else if (insert) {  // the id table is full: serve a get instead
      s.get(slot);
      ++r.counts.gets;
    } else {
      s.erase(slot);
      ++r.counts.deletes;
    }
  }
  r.seconds = perfw::now_seconds() - t0;
  r.cpu_seconds = thread_cpu_seconds() - cpu0;
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  const Config c = parse(argc, argv);
  const double t_start = perfw::now_seconds();
  std::string origin = perfw::checked_malloc_origin(kProgram);
  perfw::Rng rng(c.seed);
  // Room for the ids of every key phase 1 inserts and as many again while serving.
  Store store(c, 2 * c.keys + 1024);
  const long baseline_pss = perfw::smaps_rollup_kib("Pss");
  const Progress progress(c.quiet, baseline_pss);

  double t = perfw::now_seconds();
  for (uint64_t k = 0; k < c.keys; ++k) store.insert(rng, c.min_size, c.max_size);
  const long insert_pss = progress.phase("insert", t, store);

  t = perfw::now_seconds();
  store.shuffle(rng);
  for (uint64_t i = 0; i < store.live(); ++i) store.set(i, rng, c.new_min_size, c.new_max_size);
  const long full_pss = progress.phase("rewrite", t, store);

  t = perfw::now_seconds();
  const uint64_t doomed = c.keys * c.delete_pct / 100;
  for (uint64_t d = 0; d < doomed; ++d) store.erase(rng.below(store.live()));
  store.trim_ids();
  const long delete_pss = progress.phase("delete", t, store);

  CompactResult compacted;
  long compact_pss = -1;
  if (c.compact) {
    t = perfw::now_seconds();
    compacted = compact_now();
    compact_pss = progress.phase("compact", t, store);
  }

  t = perfw::now_seconds();
  const ServeResult served = serve(c, store, rng);
  progress.phase("serve", t, store);
  if (c.mesh_report) {
    using PrintFn = void (*)(int, int);
    auto fn = reinterpret_cast<PrintFn>(dlsym(RTLD_DEFAULT, "mesh_print_stats"));
    if (fn != nullptr) fn(2, 2);
  }

  const long pss = perfw::smaps_rollup_kib("Pss");
  const long rss = perfw::smaps_rollup_kib("Rss");
  const long maps = perfw::mapping_count();
  perfw::MeshFacts mesh;
  const bool have_mesh = perfw::mesh_facts(mesh);
  store.verify();
  const uint64_t live = store.live_bytes();

  std::printf("malloc_from=%s\n", origin.c_str());
  std::printf("keys=%" PRIu64 "\nlive_keys=%" PRIu64 "\n", c.keys, store.live());
  std::printf("gets=%" PRIu64 "\nsets=%" PRIu64 "\ninserts=%" PRIu64 "\ndeletes=%" PRIu64 "\n",
              served.counts.gets, served.counts.sets, served.counts.inserts, served.counts.deletes);
  std::printf("live_bytes=%" PRIu64 "\n", live);
  std::printf("baseline_pss_kb=%ld\ninsert_pss_kb=%ld\nfull_pss_kb=%ld\ndelete_pss_kb=%ld\n",
              baseline_pss, insert_pss, full_pss, delete_pss);
  std::printf("compact=%s\n", compacted.how);
  if (c.compact) std::printf("compact_ms=%.3f\ncompact_pss_kb=%ld\n", compacted.ms, compact_pss);
  if (compacted.meshes >= 0) std::printf("meshes=%lld\n", compacted.meshes);
  std::printf("serve_seconds=%.3f\nserve_ops=%" PRIu64 "\n", served.seconds, served.ops);
  if (served.ops > 0 && served.seconds > 0) {
    std::printf("ops_per_sec=%.0f\n", static_cast<double>(served.ops) / served.seconds);
    std::printf("ns_per_op=%.1f\n", served.seconds * 1e9 / static_cast<double>(served.ops));
    std::printf("cpu_ns_per_op=%.1f\n", served.cpu_seconds * 1e9 / static_cast<double>(served.ops));
  }
  std::printf("pss_kb=%ld\nrss_kb=%ld\nheap_pss_kb=%ld\n", pss, rss, pss - baseline_pss);
  if (live > 0 && pss >= 0) {
    std::printf("pss_per_live=%.4f\n", static_cast<double>(pss) * 1024.0 / live);
    std::printf("heap_pss_per_live=%.4f\n",
                static_cast<double>(pss - baseline_pss) * 1024.0 / live);
  }
  std::printf("maps=%ld\n", maps);
  if (have_mesh) {
    std::printf("mesh_count=%lld\nmesh_pause_max_ns=%lld\nmesh_pause_p99_ns=%lld\nmeshed_bytes_total=%lld\n",
                mesh.mesh_count, mesh.mesh_pause_max_ns, mesh.mesh_pause_p99_ns, mesh.meshed_bytes_total);
  }
  std::printf("total_seconds=%.3f\n", perfw::now_seconds() - t_start);
  std::fflush(stdout);

  store.clear();
  return 0;
}
