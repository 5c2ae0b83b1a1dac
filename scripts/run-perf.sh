#!/usr/bin/env bash
# The perf command: builds libmesh and the workload programs (Release), runs the perf matrix -
# workloads {test-stress, larson, larson-turnover, churn, fragmenter, kvstore, fork, micro,
# redis, cpython, the classic tier (group `classic`)} x allocators {libmesh, glibc, jemalloc,
# tcmalloc, mimalloc}, several repetitions - and prints one table of medians and libmesh's paired
# ratios (and the classic tier's ratios to jemalloc). --record adds the run to results/.
#   scripts/run-perf.sh             5 repetitions (40-60 minutes on 2 cores)
#   scripts/run-perf.sh --quick     1 small repetition (under 5 minutes, for CI)
#   scripts/run-perf.sh --workloads classic --reps 3   the classic tier alone (~10 minutes)
#   scripts/run-perf.sh --help      every option
# The work is done by scripts/perflib (Python, standard library + matplotlib for plots).
set -euo pipefail
cd "$(dirname "$0")/.."

# A fresh machine may not even have Python yet: install the dependencies first then.
if [ ! -x /usr/bin/python3 ]; then
  scripts/install-deps.sh
fi
export PYTHONPATH="$PWD/scripts${PYTHONPATH:+:$PYTHONPATH}"
exec /usr/bin/python3 -m perflib "$@"
