#!/usr/bin/env bash
# The short tensor-core kernels (cuda/fftconv/short_conv.cu: L <= 128, L <= 256 where linear) and N = 512 in one
# device call (about 9 minutes on an H100/H200), from the repository root:
#
#   OUT=/some/dir bash benchmarks/device_short.sh
#
# In order, each step getting what is left of DEADLINE seconds (default 560; a step under 20 s is skipped):
# 1. the package build, with short_selftest compiled alongside (-lineinfo), and the A/B binaries below;
# 2. short_selftest: its correctness cases and FUZZ (default 300) of random shapes (every one also runs the BLH
#    forward, which must give the BHL y bitwise), then the timed rows (B=64 H=768 bf16 gated + skip, N 16..128 with
#    L = N and N/2, N = 256 with L = 128 and 256, N = 512 with L = 256: forward, backward and BLH forward, against
#    the 4- and 7-stream floors);
# 3. compute-sanitizer memcheck, racecheck and synccheck on short_selftest --small;
# 4. the kernel A/B, when there is one: the timed rows AB_ROWS (default N 16, 64, 128 and the causal 256 and 512
#    rows; they check too) of a baseline and of variants, each a short_selftest of its own:
#      baseline: another revision's kernel, put where the call sees it (build/ is git-ignored: pass build/ab_base
#        in run's carry):  mkdir -p build/ab_base/fftconv && for f in short_conv.cu short_conv.h; do
#        git show REV:cuda/fftconv/$f > build/ab_base/fftconv/$f; done
#      VARIANTS="name:nvcc flags;name:flags": the working tree's kernel built with those defines;
#    twice over, alternating with the working tree's own binary, each run a fresh process;
# 5. bench_fftconv through jff.fftconv, device-side (L = N and the causal L = N/2): BHL at BENCH_SIZES (default N 16,
#    32, 64, 128, 256, 512; fftconv-short.json; the causal 256 row is the short kernels', the L = 256 ones the fused
#    kernels'), then, unless GENERIC=0, N 16..256 with JFF_SHORT_CONV=0, i.e. on the kernels these rows ran before
#    (fftconv-short-generic.json: the A/B in one call), then N 256 and 512 with JFF_SHORT_CONV_MAX_L=256
#    (fftconv-short-256.json; AB256=0 leaves it out) and N 512 with JFF_SHORT_CONV_MAX_L=128 (its causal row, L =
#    256, on the fused kernels as before session 40; fftconv-short-max128.json; MAX128=0 leaves it out);
# 6. the GPU tests -k "fftconv and not long";
# 7. the BHL tables of step 5 in BLH at BLH_SIZES (default N 16..128; fftconv-short-blh.json,
#    fftconv-short-blh-generic.json; with JFF_SHORT_CONV=0 the backward still goes through XLA's transposes, to the
#    generic BHL kernels); BLH=0 leaves them out;
# 8. with NCU=1, Nsight Compute on KERNEL_REGEX (default "short_fwd_kernel short_bwd_kernel") at N = 128 (L = N)
#    and the causal N = 256 row (device_profile_monarch.sh with SHORT=1; its files in $OUT/ncu.tgz, its summary
#    printed).
# SELFTEST=0 leaves out steps 2 and 3. AB_ONLY=1: no package build, only the self-test binaries and step 4 (a
# short call: about 2 minutes of compiling, in parallel, then the rows).
# Files under $OUT: build.log selftests.log ab.log bench.log test.log json.tgz ncu.tgz (the tables' JSON files: the
# device returns 8 files at most).
source "$(dirname "$0")/device_lib.sh"
export JFF_BENCH_DEVICE_TIMING=${JFF_BENCH_DEVICE_TIMING:-1}

b=build/selftests
pids=()
"${nv[@]}" -lineinfo -o "$b/short_selftest" cuda/fftconv/short_selftest.cu >"$OUT/selftests.log" 2>&1 &
pids+=($!)
ab=()
if [ -f build/ab_base/fftconv/short_conv.cu ]; then
  # Not "${nv[@]}": build/ab_base must come before -Icuda on the include path.
  nvcc -std=c++17 -O3 -gencode=arch=compute_90a,code=sm_90a --expt-relaxed-constexpr -Ibuild/ab_base -Icuda \
    "-I$jaxinc" -o "$b/short_ab_base" cuda/fftconv/short_selftest.cu >"$OUT/ab.log" 2>&1 &
  pids+=($!)
  ab+=(base)
fi
IFS=';' read -ra variants <<<"${VARIANTS:-}"
for v in "${variants[@]}"; do
  [ -n "$v" ] || continue
  read -ra flags <<<"${v#*:}"
  "${nv[@]}" "${flags[@]}" -o "$b/short_ab_${v%%:*}" cuda/fftconv/short_selftest.cu >>"$OUT/ab.log" 2>&1 &
  pids+=($!)
  ab+=("${v%%:*}")
done
if [ "${AB_ONLY:-0}" != 1 ]; then
  bash benchmarks/device_run.sh build >"$OUT/build.log" 2>&1
  tail -n 2 "$OUT/build.log"
fi
for p in "${pids[@]}"; do wait "$p" || echo "a self-test compile failed (selftests.log, ab.log)"; done
if [ "${SELFTEST:-1}" = 1 ]; then
  run_left selftests.log "$b/short_selftest" --fuzz "${FUZZ:-300}" --seed 11
  for tool in memcheck racecheck synccheck; do
    run_left selftests.log compute-sanitizer --tool "$tool" --error-exitcode 3 "$b/short_selftest" --small
  done
  grep -hE "^T |ALL PASS|FAIL|ERROR SUMMARY|RACECHECK SUMMARY|exit" "$OUT/selftests.log"
fi
# Twice, alternating with the working tree's binary ("tree"), each in a fresh process: an order effect shows.
rows=${AB_ROWS:-T bf16 N16 L=N|T bf16 N64 L=N|T bf16 N128 L=N|T bf16 N256 L=N/2|T bf16 N512 L=N/2}
for round in 1 2; do
  for name in "${ab[@]}" tree; do
    [ ${#ab[@]} -gt 0 ] || break
    bin=$b/short_ab_$name
    [ "$name" = tree ] && bin=$b/short_selftest
    echo "=== variant $name (round $round)" >>"$OUT/ab.log"
    run_left ab.log "$bin" --only "$rows"
  done
done
[ ${#ab[@]} -eq 0 ] || grep -hE "^=== variant|^T |ALL PASS|FAIL|exit" "$OUT/ab.log"
[ "${AB_ONLY:-0}" != 1 ] || exit 0
mkdir -p "$OUT/json"
bench=(python3 benchmarks/bench_fftconv.py --target-s 0.2 --out "$OUT/json" --no-plot)
run_left bench.log "${bench[@]}" --sizes "${BENCH_SIZES:-16,32,64,128,256,512}" --name fftconv-short
[ "${GENERIC:-1}" = 1 ] && JFF_SHORT_CONV=0 run_left bench.log "${bench[@]}" --sizes 16,32,64,128,256 --name fftconv-short-generic
[ "${AB256:-1}" = 1 ] && JFF_SHORT_CONV_MAX_L=256 run_left bench.log "${bench[@]}" --sizes 256,512 --name fftconv-short-256
[ "${MAX128:-1}" = 1 ] && JFF_SHORT_CONV_MAX_L=128 run_left bench.log "${bench[@]}" --sizes 512 --name fftconv-short-max128
grep -vE "^  " "$OUT/bench.log" | tail -n 40
gpu_tests "fftconv and not long"
tail -n 3 "$OUT/test.log"
if [ "${BLH:-1}" = 1 ]; then
  blh_sizes=${BLH_SIZES:-16,32,64,128}
  run_left bench.log "${bench[@]}" --layout BLH --sizes "$blh_sizes" --name fftconv-short-blh
  JFF_SHORT_CONV=0 run_left bench.log "${bench[@]}" --layout BLH --sizes "$blh_sizes" --name fftconv-short-blh-generic
  grep -vE "^  " "$OUT/bench.log" | tail -n 40
fi
(cd "$OUT" && tar czf json.tgz json && rm -r json)
if [ "${NCU:-0}" = 1 ]; then
  left=$((deadline - (SECONDS - start)))
  OUT=$OUT/ncu SHORT=1 SKIP_BUILD=1 DEADLINE=$left bash benchmarks/device_profile_monarch.sh 128 "256 L=N/2"
  (cd "$OUT" && tar czf ncu.tgz ncu && rm -r ncu)
fi
