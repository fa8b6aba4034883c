#!/usr/bin/env bash
# The measurements of docs/parallel.md: REPEATS rounds, each running every configuration
# once, interleaved, so that a change in the machine's load hits all of them alike.
#   [THREADS="1 2"] [SET="--set steps=400"] docs/parallel_measure.sh OUT_DIR [REPEATS]
# One round: Bprop in one process with each BLAS thread count in THREADS, the cDNI
# simulation in one process (1 thread), then locked, dni, cdni and unlock on 2 MPI ranks
# (1 thread each). Every run is appended to OUT_DIR/parallel.json with the load average.
set -euo pipefail
out="${1:?usage: docs/parallel_measure.sh OUT_DIR [REPEATS]}"
repeats="${2:-3}"
threads="${THREADS:-1 2}"
read -r -a set <<< "${SET:-}"
export PYTHONPATH="${PYTHONPATH:-.}"
one() { (export OMP_NUM_THREADS="$1" OPENBLAS_NUM_THREADS="$1" MKL_NUM_THREADS="$1"; "${@:2}"); }
run() { python -m minidni parallel --profile quick --out "$out" --append "${set[@]}" "$@"; }
for round in $(seq "$repeats"); do
    echo "== round $round  $(date -u +%H:%M:%S)  $(uptime)"
    for n in $threads; do one "$n" run --mode locked; done
    one 1 run --mode cdni
    one 1 mpiexec -n 2 python -m minidni parallel --profile quick --out "$out" --append "${set[@]}"
done
echo "== done  $(date -u +%H:%M:%S)  $(uptime)"
