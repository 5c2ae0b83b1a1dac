"""Helpers for libmesh's performance scripts (standard library only).

Modules:
  gbench    parse google-benchmark JSON output (tolerates files cut short by a crash)
  stats     medians, per-repetition ratios, geometric means, summaries of samples
  table     plain-text and markdown tables, number formatting
  manifest  the run manifest scripts/run-perf.sh writes and scripts/perf_table.py reads

Everything is deliberately independent of the micro-benchmark itself: a sample is just
(benchmark, allocator, repetition, value), so other suites (stress tests, larson, fragmentation
PSS, fork latency) can feed the same statistics and tables.
"""
