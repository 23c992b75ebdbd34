#!/usr/bin/env bash
# Where JAX-level rows spend their time, in one device call (about 6 minutes on an H200), from the repository root:
#
#   OUT=/some/dir bash benchmarks/device_profile_jax.sh
#
# 1. the package build (device_run.sh build);
# 2. benchmarks/profile_kernels.py once per ';'-separated argument set of PROFILE_RUNS (default: 64K B=16 fwd+bwd,
#    the same with a skip, 1M B=2 fwd+bwd, 64K B=16 fwd), into profile.log;
# 3. ENV_AB="VAR=V VAR2=V2;VAR=W": AB_RUNS (default PROFILE_RUNS's) again per ';'-separated set of environment
#    settings (e.g. JFF_LONG_CHUNK_MB, JFF_LONG_CTA_ROWS: the long path's A/B knobs), headed "### SETTINGS";
# 4. TEST_K: the GPU tests matching it (pytest -m gpu -k), into test.log;
# 5. BLH=1: issue 3's table device-side, BHL then BLH in the same environment (fftconv.json and fftconv-blh.json),
#    into bench.log.
# Every step after the build gets what is left of DEADLINE seconds (default 560).
source "$(dirname "$0")/device_lib.sh"

bash benchmarks/device_run.sh build >"$OUT/build.log" 2>&1
tail -n 2 "$OUT/build.log"
runs=${PROFILE_RUNS:-"--size 64K --batch 16 --mode fwd+bwd;--size 64K --batch 16 --mode fwd+bwd --skip;--size 1M --batch 2 --mode fwd+bwd;--size 64K --batch 16 --mode fwd"}
run_profiles "$runs"
IFS=';' read -ra env_sets <<<"${ENV_AB:-}"
for e in "${env_sets[@]}"; do
  echo "### $e" >>"$OUT/profile.log"
  # shellcheck disable=SC2086  # the settings are separate words
  (export $e && run_profiles "${AB_RUNS:-$runs}")
done
cat "$OUT/profile.log"
if [ -n "${TEST_K:-}" ]; then
  gpu_tests "$TEST_K"
  tail -n 15 "$OUT/test.log"
fi
if [ "${BLH:-0}" = 1 ]; then
  export JFF_BENCH_DEVICE_TIMING=1
  run_left bench.log python3 benchmarks/bench_fftconv.py --target-s 0.2 --out "$OUT" --no-plot --name fftconv
  run_left bench.log python3 benchmarks/bench_fftconv.py --layout BLH --target-s 0.2 --out "$OUT" --no-plot \
    --name fftconv-blh
  grep -vE "^  " "$OUT/bench.log" | tail -n 50
fi
