#!/usr/bin/env bash
# The measurements behind docs/speed.md and docs/cnn.md, in one go, on a machine
# with nothing else running:
#   1. `minidni bench --compare torch` (MLP and LSTM) and `--cnn --compare torch` (the
#      ff-cnn CNN), 2 threads, wall clock;
#   2. the same with 1 thread and the CPU clock (steadier where other programs run);
#   3. `minidni reproduce ff-cnn --profile quick`, timed by /usr/bin/time (wall and CPU
#      time, peak memory), with its table of test errors;
#   4. resident memory over 1000 steps of every benchmarked model (about 10 minutes).
# Usage, from the repository root, with PyTorch installed (pip install -e '.[bench]'):
#   MINIDNI_DATA_DIR=../shared/data bash docs/speed_measure.sh [OUT]     (default OUT:
#   /tmp/minidni-speed; about 35 minutes on 2 cores). Everything printed is also saved
#   in OUT; the ff-cnn results land in OUT/results/ff-cnn.json.
set -euo pipefail
out=${1:-/tmp/minidni-speed}
mkdir -p "$out"
export MINIDNI_DATA_DIR=${MINIDNI_DATA_DIR:-../shared/data}

echo "== $(date -u +%FT%TZ) $(git rev-parse --short HEAD) load: $(cut -d' ' -f1-3 /proc/loadavg)"
python -m minidni bench --compare torch --threads 2 | tee "$out/bench_2threads.txt"
python -m minidni bench --cnn --compare torch --threads 2 | tee "$out/bench_cnn_2threads.txt"
python -m minidni bench --compare torch --threads 1 --clock cpu | tee "$out/bench_1thread_cpu.txt"
python -m minidni bench --cnn --compare torch --threads 1 --clock cpu \
  | tee "$out/bench_cnn_1thread_cpu.txt"

echo "== $(date -u +%FT%TZ) ff-cnn quick; load: $(cut -d' ' -f1-3 /proc/loadavg)"
OMP_NUM_THREADS=1 /usr/bin/time -v python -m minidni reproduce ff-cnn --profile quick \
  --out "$out/results" 2>&1 | tee "$out/ff_cnn_quick.log"

echo "== $(date -u +%FT%TZ) memory; load: $(cut -d' ' -f1-3 /proc/loadavg)"
OMP_NUM_THREADS=1 python -m minidni bench --memory 1000 --all | tee "$out/memory.txt"
echo "== $(date -u +%FT%TZ) done; saved in $out"
