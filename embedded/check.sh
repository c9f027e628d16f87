#!/usr/bin/env bash
# Builds the firmware in each configuration below at opt-level 3 and "s"
# (fat LTO, panic = abort), runs it under QEMU, and checks the budgets: the
# flash the crate adds (the firmware's flash less that of the same firmware
# with no call into the crate, the `baseline` feature) and the peak stack of
# every call. Prints the figures as Markdown tables. Then links the C
# library into a C firmware and runs the C check there. Needs
# qemu-system-arm, arm-none-eabi-gcc with newlib (Debian: gcc-arm-none-eabi,
# libnewlib-arm-none-eabi) and rustup's llvm-tools (for llvm-size).
set -euo pipefail
cd "$(dirname "$0")"
export CARGO_TERM_COLOR=never
host=$(rustc -vV | sed -n 's/^host: //p')
llvm_size=$(rustc --print sysroot)/lib/rustlib/$host/bin/llvm-size
elf() { echo "target/thumbv7em-none-eabihf/$1/streamattn-firmware"; }
# Bytes of flash: code, read-only data, initialised data and the vector table.
flash() {
  "$llvm_size" -A "$1" | awk '$1 ~ /^\.(vector_table|text|rodata|data)$/ { s += $2 } END { print s }'
}

# name | firmware features | crate flash budget | stack budget (bytes)
configs=(
  "one scorer, Kernel::Scalar|dot,scalar|16384|2048"
  "one scorer, default kernel (tiled kernel built)|dot,default-kernel,with-tiled|65536|8192"
  "all four scorers, both kernels|dot,neg-sq-dist,neg-log-dist,additive,scalar,tiled,default-kernel|131072|8192"
)

failed=0
mkdir -p target/check
echo "| firmware | opt-level | crate flash | budget | peak stack | budget |"
echo "|---|---|---:|---:|---:|---:|"
for profile in release release-s; do
  opt=3
  [ "$profile" = release-s ] && opt=s
  for config in "${configs[@]}"; do
    IFS='|' read -r name features flash_budget stack_budget <<<"$config"
    cargo build -q --profile "$profile" --features "$features,baseline"
    base=$(flash "$(elf "$profile")")
    cargo build -q --profile "$profile" --features "$features"
    crate=$(($(flash "$(elf "$profile")") - base))
    log=target/check/$profile-${features//[,\/]/-}.log
    if ! timeout 600 cargo run -q --profile "$profile" --features "$features" >"$log" 2>&1; then
      cat "$log"
      echo "!! the firmware failed: $name, opt-level $opt"
      failed=1
    fi
    stack=$(sed -n 's/.*| stack \([0-9]*\) B |.*/\1/p' "$log" | sort -n | tail -1)
    verdict=""
    if [ "$crate" -gt "$flash_budget" ] || [ "${stack:-999999}" -gt "$stack_budget" ]; then
      verdict=" (over budget)"
      failed=1
    fi
    echo "| $name | $opt | $crate B | $flash_budget B | ${stack:-?} B | $stack_budget B |$verdict"
  done
done

# The C ABI in a C firmware: the static library (`no_std`, panic = "abort")
# linked by arm-none-eabi-gcc with newlib into the repository's C check,
# run under QEMU like the Rust firmware.
echo
(cd ../capi && cargo rustc -q --release --lib --crate-type staticlib --target thumbv7em-none-eabihf --no-default-features \
  --features tiled,dot,neg-sq-dist,neg-log-dist,additive)
arm-none-eabi-gcc -std=c11 -Wall -Wextra -Werror -O2 -mcpu=cortex-m4 -mthumb -mfloat-abi=hard \
  -mfpu=fpv4-sp-d16 --specs=rdimon.specs -nostartfiles -ffunction-sections -fdata-sections \
  -Wl,--gc-sections -Wl,--no-warn-execstack -T c/mps2.ld -I../capi/include c/startup.c \
  ../capi/tests/c/check.c ../capi/target/thumbv7em-none-eabihf/release/libstreamattn_c.a -lm \
  -o target/check/check-c.elf
if timeout 600 qemu-system-arm -M mps2-an386 -cpu cortex-m4 -nographic -monitor none -serial none \
  -semihosting-config enable=on,target=native -kernel target/check/check-c.elf; then
  echo "The C check (capi/tests/c/check.c) passed on the Cortex-M4F, linked with libstreamattn_c.a:" \
    "$(flash target/check/check-c.elf) B of flash in all."
else
  echo "!! the C check failed on the Cortex-M4F"
  failed=1
fi

echo
echo "Instructions per call (QEMU, one instruction per virtual nanosecond):"
for profile in release release-s; do
  echo
  echo "opt-level ${profile#release-}:"
  grep -h ' | instructions ' "target/check/$profile-dot-neg-sq-dist-neg-log-dist-additive-scalar-tiled-default-kernel.log" || true
done
exit $failed
