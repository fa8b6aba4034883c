#!/usr/bin/env bash
# The measurements of docs/async.md: REPEATS rounds, each running every configuration
# once, interleaved, so that a change in the machine's load hits all of them alike.
#   docs/async_measure.sh OUT_DIR [REPEATS]
# One round: Bprop in one process with 1 and with 2 BLAS threads, the cDNI simulation in
# one process (1 thread), then locked, dni, cdni and unlock on 2 MPI ranks (1 thread each).
# Every run is appended to OUT_DIR/async.json with the load average before and after it.
set -euo pipefail
out="${1:?usage: docs/async_measure.sh OUT_DIR [REPEATS]}"
repeats="${2:-3}"
export PYTHONPATH="${PYTHONPATH:-.}"
one() { env OMP_NUM_THREADS="$1" OPENBLAS_NUM_THREADS="$1" MKL_NUM_THREADS="$1" "${@:2}"; }
for round in $(seq "$repeats"); do
    echo "== round $round  $(date -u +%H:%M:%S)  $(uptime)"
    one 1 python -m minidni async --profile quick --out "$out" --mode locked --append
    one 2 python -m minidni async --profile quick --out "$out" --mode locked --append
    one 1 python -m minidni async --profile quick --out "$out" --mode cdni --append
    one 1 mpiexec -n 2 python -m minidni async --profile quick --out "$out" --append
done
echo "== done  $(date -u +%H:%M:%S)  $(uptime)"
