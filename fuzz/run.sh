#!/usr/bin/env bash
# Runs every cargo-fuzz target of streamattn, one after another, each for
# $FUZZ_SECONDS seconds (default 60), one libFuzzer process at a time.
# Exits non-zero if any target finds a crash, a hang or a leak, or fails to
# build or run.
#
#   bash fuzz/run.sh                          # from the repository root
#   FUZZ_SECONDS=600 bash fuzz/run.sh         # ten minutes per target
#   FUZZ_TARGETS="api" bash fuzz/run.sh       # a subset (named, never implied)
#
# Other knobs: FUZZ_TIMEOUT (seconds per input before libFuzzer calls it a
# hang, default 30), FUZZ_MAX_LEN (default 4096), STREAMATTN_FUZZ_KNOWN (known
# bugs the `api` target skips; see fuzz/README.md; unset by default).
#
# The committed seeds in fuzz/corpus/<target> are read only: libFuzzer writes
# what it finds to a scratch corpus, fuzz/target/corpus/<target> (ignored by
# git), which later runs reuse. Crashes go to fuzz/artifacts/<target>/.
set -euo pipefail
cd "$(dirname "$0")"

FUZZ_SECONDS=${FUZZ_SECONDS:-60}
FUZZ_TIMEOUT=${FUZZ_TIMEOUT:-30}
FUZZ_MAX_LEN=${FUZZ_MAX_LEN:-4096}

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "== installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi

# cargo fuzz needs nightly flags (-Zsanitizer=address): a nightly toolchain
# if rustup has one, else the stable one with RUSTC_BOOTSTRAP=1.
toolchain=()
if command -v rustup >/dev/null && rustup toolchain list | grep -q '^nightly'; then
  toolchain=(+nightly)
else
  export RUSTC_BOOTSTRAP=1
fi
echo "== toolchain: $(cargo "${toolchain[@]}" --version)${RUSTC_BOOTSTRAP:+ (RUSTC_BOOTSTRAP=1)}"

mapfile -t all < <(cargo "${toolchain[@]}" fuzz list)
if [ "${#all[@]}" -eq 0 ]; then
  echo "!! cargo fuzz list found no target" >&2
  exit 1
fi
if [ -n "${FUZZ_TARGETS:-}" ]; then
  read -r -a targets <<<"$FUZZ_TARGETS"
  for t in "${targets[@]}"; do
    printf '%s\n' "${all[@]}" | grep -qx "$t" || { echo "!! unknown target $t (have: ${all[*]})" >&2; exit 1; }
  done
else
  targets=("${all[@]}")
fi
echo "== targets: ${targets[*]} (${FUZZ_SECONDS}s each)${STREAMATTN_FUZZ_KNOWN:+; skipping known bugs: $STREAMATTN_FUZZ_KNOWN}"

echo "== building"
cargo "${toolchain[@]}" fuzz build

failed=()
summary=()
for t in "${targets[@]}"; do
  scratch="target/corpus/$t"
  mkdir -p "$scratch" "corpus/$t" "artifacts/$t"
  log="target/fuzz-$t.log"
  echo "== fuzzing $t for ${FUZZ_SECONDS}s (log: fuzz/$log)"
  status=0
  # The scratch corpus comes first: libFuzzer writes new inputs only there.
  cargo "${toolchain[@]}" fuzz run "$t" "$scratch" "corpus/$t" -- \
    -max_total_time="$FUZZ_SECONDS" -timeout="$FUZZ_TIMEOUT" -rss_limit_mb=4096 \
    -max_len="$FUZZ_MAX_LEN" -len_control=0 -print_final_stats=1 >"$log" 2>&1 || status=$?
  grep -a -E '^#[0-9]+ +(INITED|DONE)|^Done |number_of_executed_units|panicked at|^==[0-9]+== ERROR|SUMMARY|Test unit written' "$log" | tail -n 12 || true
  execs=$(grep -a -Eo 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -Eo '[0-9]+$' | tail -n 1 || true)
  if [ "$status" -ne 0 ]; then
    echo "!! $t FAILED (exit $status); reproducer(s) in fuzz/artifacts/$t/, full log fuzz/$log" >&2
    failed+=("$t")
    summary+=("$t: FAILED after ${execs:-?} executions")
  else
    summary+=("$t: ok, ${execs:-?} executions")
  fi
done

echo "== summary"
printf '   %s\n' "${summary[@]}"
if [ "${#failed[@]}" -ne 0 ]; then
  echo "!! failing targets: ${failed[*]}" >&2
  exit 1
fi
