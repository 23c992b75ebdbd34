#!/usr/bin/env bash
# The outer passes' access pattern alone (cuda/fftconv_long/access_bench.cu) on a CUDA machine, from the
# repository root: register loads (today's form), cp.async and TMA boxes against a contiguous copy, at the
# long path's outer shapes. Output: $OUT/access_bench.log.
#   OUT=/some/dir [CASES="N1 N2 TW rows work;..."] bash benchmarks/device_access_bench.sh
source "$(dirname "$0")/device_lib.sh"
"${nv[@]}" -o build/selftests/access_bench cuda/fftconv_long/access_bench.cu >"$OUT/access_build.log" 2>&1 ||
  { cat "$OUT/access_build.log"; exit 1; }
nvidia-smi --query-gpu=name,clocks.max.sm,clocks.max.mem --format=csv,noheader | tee "$OUT/access_bench.log"
IFS=';' read -r -a cases <<<"${CASES:-256 4096 16 768 0;256 4096 32 768 0;256 4096 64 768 0;512 8192 16 192 0;16 4096 64 12288 0;32 8192 64 3072 0;256 4096 16 768 6}"
for c in "${cases[@]}"; do
  # shellcheck disable=SC2086  # the case is five words
  run_left access_bench.log build/selftests/access_bench $c
done
cat "$OUT/access_bench.log"
