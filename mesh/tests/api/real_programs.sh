#!/usr/bin/env bash
# Runs programs installed on this machine with and without LD_PRELOAD=<allocator library> and
# requires identical output and exit status. Programs that are missing are skipped; exit 77
# (ctest SKIP_RETURN_CODE) when none could run.
#   real_programs.sh /path/to/libmesh.so
set -u

lib=${1:-}
if [ -z "$lib" ] || [ ! -f "$lib" ]; then
  echo "usage: real_programs.sh LIBRARY.so (got '${lib}')" >&2
  exit 2
fi
lib=$(readlink -f "$lib")

work=$(mktemp -d /tmp/mesh_real_programs.XXXXXX)
trap 'rm -rf "$work"' EXIT
cd "$work" || exit 2

failures=0
ran=0
skipped=()

have() { command -v "$1" >/dev/null 2>&1; }

# The preload really takes effect (otherwise every comparison below is vacuous).
if ! LD_PRELOAD=$lib cat /proc/self/maps | grep -qF "$lib"; then
  echo "FAIL: LD_PRELOAD=$lib does not load the library into cat" >&2
  exit 1
fi

# compare NAME CMD...: runs CMD in a fresh copy of the case directory twice.
compare() {
  local name=$1
  shift
  local a="$work/$name.plain" b="$work/$name.mesh" start=$SECONDS
  rm -rf "$a" "$b"
  mkdir -p "$a" "$b"
  (cd "$a" && "$@") >"$a.out" 2>"$a.err"
  local rc_a=$?
  (cd "$b" && LD_PRELOAD=$lib "$@") >"$b.out" 2>"$b.err"
  local rc_b=$?
  ran=$((ran + 1))
  if [ "$rc_a" != "$rc_b" ] || ! cmp -s "$a.out" "$b.out" || ! cmp -s "$a.err" "$b.err"; then
    failures=$((failures + 1))
    echo "FAIL: $name: exit $rc_a without, $rc_b with LD_PRELOAD"
    diff <(cat "$a.out" "$a.err") <(cat "$b.out" "$b.err") | head -20
    return
  fi
  if [ "$rc_a" != 0 ]; then
    failures=$((failures + 1))
    echo "FAIL: $name: exit $rc_a in both runs"
    head -20 "$a.err"
    return
  fi
  echo "ok: $name ($(wc -c <"$a.out") bytes of output, $((SECONDS - start))s)"
}

# ---- python -------------------------------------------------------------------------------
if [ -x /usr/bin/python3 ]; then
  compare python3 env PYTHONHASHSEED=0 /usr/bin/python3 -c '
import collections, json
words = ["w%05d" % ((i * 7919) % 50000) for i in range(200000)]
counts = collections.Counter(words)
d = {}
for i, w in enumerate(words):
    d.setdefault(w[:3], []).append(i)
big = "".join(sorted(set(words)))[:100000]
s = sorted(words, key=lambda w: (w[::-1], w))
print(len(counts), counts.most_common(3), sum(len(v) for v in d.values()))
print(big[:60], len(big), s[:5], s[-5:])
print(json.dumps({k: len(v) for k, v in sorted(d.items())})[:200])
print(sum(x * x for x in range(10**6)) % 1000003, "".join(reversed("libmesh" * 1000))[:21])
'
else skipped+=(python3); fi

# Descriptors (docs/host-contract.md section 1): CPython's subprocess tests list the descriptors
# a child sees, and a shell writes a file through a number it chose. Only the verdicts are
# compared (the test runner prints timings).
python_fd_tests() {
  /usr/bin/python3 -m test test_subprocess -m 'test_pass_fds*' -m 'test_close_fds*' \
    -m 'test_fd_leak*' >log 2>&1
  local rc=$?
  grep -E '^(Tests result|[0-9]+ tests? (OK|failed))' log
  return $rc
}
if /usr/bin/python3 -c 'import test.test_subprocess' >/dev/null 2>&1; then
  compare python3-subprocess-fds python_fd_tests
else skipped+=(python3-subprocess-fds); fi
# (The shell frees three keys in four of a large table, which fragments its heap enough to mesh;
# before the fix, heap pages went into f through descriptor 3, the memfd's old number.)
shell_fd_file() {
  bash -c 'exec 3>f; declare -A a; for i in $(seq 1 100000); do a[k$i]="item $i $RANDOM"; done
           for i in $(seq 1 100000); do (( i % 4 )) && unset "a[k$i]"; done
           for i in $(seq 1 50000); do b+=("x$i"); done; exec 3>&-'
  wc -c <f
}
compare bash-fd-3 shell_fd_file

# ---- git ----------------------------------------------------------------------------------
git_work() {
  export GIT_CONFIG_NOSYSTEM=1 HOME="$PWD" GIT_AUTHOR_NAME=Mesh GIT_AUTHOR_EMAIL=mesh@example.org
  export GIT_COMMITTER_NAME=Mesh GIT_COMMITTER_EMAIL=mesh@example.org
  export GIT_AUTHOR_DATE="2024-01-01T00:00:00Z" GIT_COMMITTER_DATE="2024-01-01T00:00:00Z"
  git --version
  git init -q repo && cd repo || return 1
  git config commit.gpgsign false
  for round in 1 2 3; do
    for i in $(seq 1 40); do
      seq "$i" $((i * round * 50)) >"file$i.txt"
    done
    mkdir -p "dir$round" && seq 1 1000 >"dir$round/data"
    git add -A && git commit -q -m "round $round" || return 1
  done
  git log --stat
  git diff HEAD~2 --stat
  git rev-list --all --objects | wc -l
  git gc -q && git fsck --no-progress 2>&1 && git count-objects -v | grep -v size
}
if have git; then compare git git_work; else skipped+=(git); fi

# ---- compression --------------------------------------------------------------------------
make_data() {
  awk 'BEGIN { x = 12345; for (i = 0; i < 100000; i++) { x = (x * 1103515245 + 12345) % 2147483648;
       printf "%d line %d %s\n", x % 1000, i, substr("abcdefghijklmnopqrstuvwxyz", x % 20 + 1, 6) } }'
}
compress_roundtrip() {
  local tool=$1
  make_data >data
  sha256sum data
  case $tool in
    gzip) gzip -n -c data >data.z || return 1 ;;  # -n: no name/time stamp in the header
    xz) xz -3 -T1 -c data >data.z || return 1 ;;  # -T1: single-threaded, deterministic
    *) "$tool" -c data >data.z || return 1 ;;
  esac
  sha256sum data.z
  "$tool" -dc data.z >data.back || return 1
  sha256sum data.back
}
if have gzip; then compare gzip compress_roundtrip gzip; else skipped+=(gzip); fi
if have xz; then compare xz compress_roundtrip xz; else skipped+=(xz); fi
if have bzip2; then compare bzip2 compress_roundtrip bzip2; else skipped+=(bzip2); fi

# ---- sort ---------------------------------------------------------------------------------
sort_work() {
  make_data >data
  sort data | sha256sum
  sort -n -k3 -S 1M data | sha256sum
  sort -u -k4 data | head -5
}
if have sort; then compare sort sort_work; else skipped+=(sort); fi

# ---- cmake, perl ----------------------------------------------------------------------------
if have cmake; then compare cmake cmake --version; else skipped+=(cmake); fi
if have perl; then
  compare perl perl -e 'my %h; $h{$_ % 1000} .= "x$_" for 1 .. 200000;
    my @k = sort { $a <=> $b } keys %h; my $t = 0; $t += length $h{$_} for @k;
    my @s = sort map { scalar reverse "$_" } 1 .. 50000;
    print scalar(@k), " $t @s[0..4] ", join(",", map { length $h{$_} } @k[0..9]), "\n"'
else skipped+=(perl); fi

[ ${#skipped[@]} -gt 0 ] && echo "skipped (not installed): ${skipped[*]}"
echo "$ran programs compared, $failures failed"
[ "$ran" -eq 0 ] && exit 77
[ "$failures" -eq 0 ]
