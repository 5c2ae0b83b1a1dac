#!/usr/bin/python3
"""python-churn: pure-Python dict, list and str churn, the CPython program of the classic tier.

Run with PYTHONMALLOC=malloc so that every object comes from the C allocator under test
(`python3 -m perflib.classic python` starts it that way under each allocator). Per round:

  1. make --docs documents: lists of 20-120 words drawn from a vocabulary that grows as the
     round goes (new words are built with f-strings and slicing, so many short-lived strs);
  2. index them: a dict word -> {document id: occurrences} (many small dicts that grow), and a
     dict of word counts;
  3. rewrite: drop every third document (its ids removed from the index), replace each
     surviving document's words by an upper-cased or reversed copy of some of them, joined and
     split again;
  4. summarise: sort the words by count, format the top ones into a report string.
The objects of one round die when the next round's are built (the caller holds the previous
round's index until the new one is returned, so two generations overlap). The garbage collector
is off: there are no cycles, and collections would not depend on the allocator.

Checked at the end of every round: the index and the counts are recomputed independently (one
pass over the surviving documents with collections.Counter) and must agree; the report must list
what the counts say. Any disagreement exits 1. Output: key=value lines (`rounds`, `words`,
`checksum` - the same under every allocator -, `seconds`) and `verified=1`.
"""

import argparse
import collections
import gc
import sys
import time
import zlib

SYLLABLES = ["ka", "lo", "mi", "ne", "ru", "ta", "shi", "po", "el", "vu", "an", "dor", "is"]


class Lcg:
    """A small deterministic generator (the same words under every allocator and every run)."""

    def __init__(self, seed: int):
        self.s = seed & 0xFFFFFFFFFFFF

    def below(self, n: int) -> int:
        self.s = (self.s * 25214903917 + 11) & 0xFFFFFFFFFFFF
        return (self.s >> 17) % n


def make_word(rng: Lcg) -> str:
    parts = [SYLLABLES[rng.below(len(SYLLABLES))] for _ in range(1 + rng.below(4))]
    word = "".join(parts)
    if rng.below(5) == 0:
        word = f"{word}-{rng.below(1000)}"
    return word[: 3 + rng.below(12)]


def one_round(rng: Lcg, docs_wanted: int) -> tuple[dict, int]:
    vocab = [make_word(rng) for _ in range(200)]
    docs: dict[int, list[str]] = {}
    for d in range(docs_wanted):
        if rng.below(4) == 0:
            vocab.append(make_word(rng))
        docs[d] = [vocab[rng.below(len(vocab))] for _ in range(20 + rng.below(101))]

    index: dict[str, dict[int, int]] = {}
    counts: dict[str, int] = {}

    def add(d: int, w: str) -> None:
        postings = index.setdefault(w, {})
        postings[d] = postings.get(d, 0) + 1
        counts[w] = counts.get(w, 0) + 1

    def remove(d: int, w: str) -> None:
        postings = index[w]
        postings[d] -= 1
        if postings[d] == 0:
            del postings[d]
        counts[w] -= 1
        if counts[w] == 0:
            del counts[w]
            del index[w]

    for d, words in docs.items():
        for w in words:
            add(d, w)
    for d in range(0, docs_wanted, 3):  # drop every third document
        for w in docs.pop(d):
            remove(d, w)
    for d, words in docs.items():  # rewrite the survivors
        new = [w.upper() if (d + i) % 3 == 0 else w[::-1] for i, w in enumerate(words) if i % 2]
        new = " ".join(new).split(" ")
        for w in words:
            remove(d, w)
        for w in new:
            add(d, w)
        docs[d] = new

    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    report = "\n".join(f"{w:>16} {n:6d}" for w, n in ranked[:50])

    # The check: recount from the documents alone.
    recount = collections.Counter(w for words in docs.values() for w in words)
    if recount != collections.Counter(counts):
        fail("the word counts disagree with a recount")
    pairs = collections.Counter((d, w) for d, words in docs.items() for w in words)
    if pairs != collections.Counter({(d, w): n for w, postings in index.items()
                                     for d, n in postings.items()}):
        fail("the index disagrees with the documents")
    top = recount.most_common()
    top.sort(key=lambda kv: (-kv[1], kv[0]))
    if report.split("\n")[0].split() != [top[0][0], str(top[0][1])]:
        fail("the report does not start with the most frequent word")
    return index, zlib.crc32(report.encode()) ^ len(counts)


def fail(why: str) -> None:
    print(f"python-churn: {why}", file=sys.stderr)
    sys.exit(1)


def main() -> int:
    ap = argparse.ArgumentParser(description="Pure-Python dict/list/str churn (the classic tier's "
                                 "CPython program); run with PYTHONMALLOC=malloc")
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--docs", type=int, default=4000, help="documents per round")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--quick", action="store_true", help="a short run (1 round of 1000 documents)")
    args = ap.parse_args()
    if args.rounds < 1 or args.docs < 3:
        ap.error("--rounds must be at least 1 and --docs at least 3")
    if args.quick:
        args.rounds, args.docs = 1, 1000
    gc.disable()
    rng = Lcg(args.seed)
    t0 = time.perf_counter()
    index: dict = {}
    checksum = 0
    for _ in range(args.rounds):
        index, c = one_round(rng, args.docs)
        checksum = (checksum * 31 + c) & 0xFFFFFFFF
    seconds = time.perf_counter() - t0
    print(f"rounds={args.rounds}\nwords={len(index)}\nchecksum={checksum}")
    print(f"seconds={seconds:.4f}\nverified=1")
    return 0


if __name__ == "__main__":
    sys.exit(main())
