"""libmesh's performance scripts (standard library; matplotlib only for the plots).

scripts/run-perf.sh runs `python3 -m perflib` (cli.py). Modules:
  cli        command line of run-perf.sh: build, run the matrix, table, compare, record
  build      configure and build libmesh and the programs, with fallbacks and --rev
  workloads  the workloads: how each program is run, which figures its output gives
  runner     runs one program: exit status, wall time, peak RSS, sampled peak PSS
  servers    drives real programs from Debian (redis-server, python3) under an allocator:
             PSS over time, binding checks, value verification (`python3 -m perflib.servers`)
  resp       the RESP client of the redis workload and its self-checking key/value book
  matrix     the run order, and the result document every other part reads
  mtable     the readable table of a result document
  compare    libmesh's change against an earlier result; the regression rule (judge)
  continuous --revs: every commit of a range not yet recorded, resumable
  bisect     --bisect: the first commit where a figure regressed (pluggable measure function)
  store      results/: result files, history.csv, looking up references
  stresshist results/stress-history.csv, written by run-stress.sh --record
  plots      PNG trend and bar charts (matplotlib, Agg)
  dashboard  results/index.html: the static page of the whole history
  palette    allocator colours and order (plots and dashboard)
  sysinfo    machine, compiler and git facts
  stats      medians, per-repetition ratios, geometric means, spreads, rank tests
  table      plain-text and markdown tables, number formatting
  gbench     google-benchmark JSON parsing (tolerates files cut short by a crash)
  manifest, report   the older manifest-based micro-benchmark summary (scripts/perf_table.py
             --manifest / ALLOCATOR=FILE)
  testkit    synthetic documents and fake programs for scripts/tests/test_perf_*.py

A sample is just (figure, allocator, repetition, value), so every workload - stress programs,
fragmentation PSS, fork latency, google-benchmark - feeds the same statistics and tables.
"""
