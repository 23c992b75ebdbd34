#!/usr/bin/env bash
# A/B of short_conv.cu variants on one device call (about 9 minutes), from the repository root:
#
#   mkdir -p build/ab_base/fftconv && git show REV:cuda/fftconv/short_conv.cu > build/ab_base/fftconv/short_conv.cu
#   git show REV:cuda/fftconv/short_conv.h > build/ab_base/fftconv/short_conv.h      (the baseline, optional)
#   OUT=/some/dir VARIANTS="batch4:-DJFF_SHORT_BATCH=4 -DJFF_SHORT_BWD_MINB=3;..." bash benchmarks/device_short_ab.sh
#
# (build/ is git-ignored: pass it to the device with run's carry.) In order, each step getting what is left of
# DEADLINE seconds (default 560):
# 1. the package build of the working tree, and alongside it short_selftest for the working tree (-lineinfo),
#    for the baseline in build/ab_base (if there) and for each variant (name:nvcc flags; ';' between them);
# 2. the working tree's short_selftest: its correctness cases, FUZZ (default 40) random shapes, the timed rows;
#    then the timed rows AB_ROWS (which check too; default N 16, 64, 128 and the causal 256 and 512 rows) of the baseline
#    and of each variant: the kernel-time A/B;
# 3. compute-sanitizer memcheck and racecheck on the working tree's short_selftest --small;
# 4. bench_fftconv through jff.fftconv, BHL N 16..512 (fftconv-short.json) and N 16..256 with JFF_SHORT_CONV=0
#    (fftconv-short-generic.json), N = 512 with JFF_SHORT_CONV_MAX_L=linear (its causal row, L = 256, on the short
#    kernels; fftconv-short-linear.json);
# 5. the GPU tests -k "fftconv and not long";
# 6. Nsight Compute on short_bwd_kernel (and short_fwd_kernel) at N = 128 and the causal N = 256 row
#    (device_profile_monarch.sh SHORT=1; $OUT/ncu.tgz).
# Files under $OUT: build.log selftests.log ab.log bench.log test.log json.tgz ncu.tgz.
source "$(dirname "$0")/device_lib.sh"
export JFF_BENCH_DEVICE_TIMING=${JFF_BENCH_DEVICE_TIMING:-1}

b=build/selftests
nvab=(nvcc -std=c++17 -O3 -gencode=arch=compute_90a,code=sm_90a --expt-relaxed-constexpr)
pids=()
"${nv[@]}" -lineinfo -o "$b/short_selftest" cuda/fftconv/short_selftest.cu >"$OUT/selftests.log" 2>&1 &
pids+=($!)
names=()
if [ -f build/ab_base/fftconv/short_conv.cu ]; then
  "${nvab[@]}" -Ibuild/ab_base -Icuda "-I$jaxinc" -o "$b/short_ab_base" cuda/fftconv/short_selftest.cu \
    >"$OUT/ab.log" 2>&1 &
  pids+=($!)
  names+=(base)
fi
IFS=';' read -ra variants <<<"${VARIANTS:-}"
for v in "${variants[@]}"; do
  [ -n "$v" ] || continue
  name=${v%%:*}
  read -ra flags <<<"${v#*:}"
  "${nv[@]}" "${flags[@]}" -o "$b/short_ab_$name" cuda/fftconv/short_selftest.cu >>"$OUT/ab.log" 2>&1 &
  pids+=($!)
  names+=("$name")
done
bash benchmarks/device_run.sh build >"$OUT/build.log" 2>&1
tail -n 2 "$OUT/build.log"
for p in "${pids[@]}"; do wait "$p" || echo "a self-test compile failed (selftests.log, ab.log)"; done
run_left selftests.log "$b/short_selftest" --fuzz "${FUZZ:-40}" --seed 38
grep -hE "^T |ALL PASS|FAIL|exit" "$OUT/selftests.log"
for name in "${names[@]}"; do
  echo "=== variant $name" >>"$OUT/ab.log"
  run_left ab.log "$b/short_ab_$name" --only "${AB_ROWS:-T bf16 N16 L=N|T bf16 N64 L=N|T bf16 N128 L=N|T bf16 N256 L=N/2|T bf16 N512 L=N/2}"
done
grep -hE "^=== variant|^T |ALL PASS|FAIL|exit" "$OUT/ab.log"
for tool in memcheck racecheck; do
  run_left selftests.log compute-sanitizer --tool "$tool" --error-exitcode 3 "$b/short_selftest" --small
done
grep -hE "ERROR SUMMARY|RACECHECK SUMMARY|exit" "$OUT/selftests.log"
mkdir -p "$OUT/json"
bench=(python3 benchmarks/bench_fftconv.py --target-s 0.2 --out "$OUT/json" --no-plot)
run_left bench.log "${bench[@]}" --sizes 16,32,64,128,256,512 --name fftconv-short
JFF_SHORT_CONV=0 run_left bench.log "${bench[@]}" --sizes 16,32,64,128,256 --name fftconv-short-generic
JFF_SHORT_CONV_MAX_L=linear run_left bench.log "${bench[@]}" --sizes 512 --name fftconv-short-linear
grep -vE "^  " "$OUT/bench.log" | tail -n 40
(cd "$OUT" && tar czf json.tgz json && rm -r json)
(cd tests && run_left test.log python3 -m pytest -p no:cacheprovider -q -rfE -m gpu -k "fftconv and not long")
tail -n 3 "$OUT/test.log"
left=$((deadline - (SECONDS - start)))
OUT=$OUT/ncu SHORT=1 SKIP_BUILD=1 DEADLINE=$left KERNEL_REGEX=${KERNEL_REGEX:-short_bwd_kernel} \
  bash benchmarks/device_profile_monarch.sh 128 "256 L=N/2"
(cd "$OUT" && tar czf ncu.tgz ncu && rm -r ncu)
