#!/usr/bin/env bash
# One run, alternating, single thread: the crate's kernels from the default
# build (at the detected level and capped with STREAMATTN_BENCH_LEVEL), from
# static builds, and PyTorch, with the FMA peak and the read bandwidth
# measured in each round. The machine may be shared and its speed drift:
# compare figures of the same round.
#
#   bash benches/peers/side_by_side.sh [ROUNDS] [FILTER] [VENV]
#
# FILTER is a criterion regex (default: the shapes of the README's table);
# VENV a PyTorch virtual environment (benches/peers/setup-torch.sh), skipped
# if absent. RUNS lists `build:cap` pairs (builds: default, v3 =
# x86-64-v3, native; an empty cap runs at the detected level); default
# "default: default:avx2 default:sse2 v3: native:". Prints
# `build:cap level id value unit` lines.
set -u
cd "$(dirname "$0")/../.."
rounds=${1:-2}
filt=${2:-'^(fma-peak/.*|read-bandwidth/256MiB|(prefill-1k-d64|prefill-1k-d128|long-8k-d64)/(dot|logdist)/tiled|(decode-32k-d128|gqa-decode-32k)/dot/tiled|tiny-16-d64/dot/tiled)$'}
venv=${3:-/tmp/torch-peer}
runs=${RUNS:-default: default:avx2 default:sse2 v3: native:}
flags() { case $1 in v3) echo "-C target-cpu=x86-64-v3" ;; native) echo "-C target-cpu=native" ;; *) echo "" ;; esac; }
for b in $(printf '%s\n' $runs | cut -d: -f1 | sort -u); do
  RUSTFLAGS="$(flags "$b")" CARGO_TARGET_DIR="target/bench-$b" cargo bench --bench attention --no-run -q 2>/dev/null
done
for r in $(seq "$rounds"); do
  echo "## round $r"
  for run in $runs; do
    b=${run%%:*}
    cap=${run#*:}
    STREAMATTN_BENCH_LEVEL=${cap:-avx512} RUSTFLAGS="$(flags "$b")" CARGO_TARGET_DIR="target/bench-$b" \
      cargo bench -q --bench attention -- "$filt" --noplot 2>&1 |
      awk -v run="$run" '/^kernels at/{l=$3} /^[a-z0-9-]+\/[A-Za-z0-9-]+/{n=$1} /thrpt:/ && n {print run, l, n, $4, $5; n=""}'
  done
  if [ -x "$venv/bin/python" ]; then
    "$venv/bin/python" benches/peers/torch_attention.py --threads 1 --only 'prefill-1k|long-8k|decode-32k' |
      awk 'NR==1{print "# " $0; next} {print "torch", "-", $1 "/" $2, $(NF-1), $NF}'
  fi
done
