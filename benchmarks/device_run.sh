#!/usr/bin/env bash
# One call on a CUDA machine, from the repository root:
#
#   bash benchmarks/device_run.sh [info] [build] [test] [errors] [sanitize] [bench] [hyena] [selftests]
#                                                    (no stage named: all of them but selftests)
#
# Stages run in the order given; a failing stage is reported and the later ones still run. Everything is
# logged under $OUT (default build/device_out), which is kept small enough to come back whole: at most 8
# files, none deeper than $OUT/x/y:
#   summary.txt            one line per stage: passed / FAILED (exit code), seconds
#   info.log build.log test.log errors.log sanitize.log bench.log hyena.log selftests.log
#                          (selftests: the standalone kernel self-tests built with nvcc here and run, then
#                          compute-sanitizer memcheck + racecheck on their small cases; sanitizer logs tarred)
#   results.tar.gz         benchmarks' JSON and PNG files; the JSON files are also copied loose while room is left
#
# A device command may run 10 minutes, and a fresh machine builds from scratch (a few minutes): split the work,
# e.g. `build test sanitize` in one call and `build bench` in the next.
#
# Settings (environment):
#   PYTHON                 interpreter with jax (CUDA build), nanobind, scikit-build-core (default python3)
#   JFF_CUDA_ARCHS         CUDA architectures to build (default: the GPU's own, e.g. 90a on H100/H200)
#   SANITIZE_TOOLS         compute-sanitizer tools (default "memcheck racecheck")
#   BENCH_FFTCONV_ARGS     extra arguments for bench_fftconv.py   (e.g. "--sizes 256,4K")
#   BENCH_DEPTHWISE_ARGS   extra arguments for bench_depthwise.py (e.g. "--dtype fp16 --layout BLH")
#   BENCH_HYENA_ARGS       extra arguments for bench_hyena_step.py (e.g. "--sizes 4K")
#   EXAMPLE_STEPS          training steps of the example run at seq-len 8192 (default 300)
#   PYTEST_ARGS            extra arguments for both pytest runs
#   SELFTESTS              selftests stage: comma-separated programs with flags to run (default: all, with the
#                          long-N --big and --bench runs; over 10 minutes in all, so split it across calls); only
#                          the programs named here or in PROFILE are compiled (the sanitizer skips the others)
#   SELFTESTS_SANITIZE     selftests stage: 0 leaves out compute-sanitizer (default 1)
#   PROFILE, NCU_ARGS      selftests stage: comma-separated programs with flags to run under `ncu $NCU_ARGS`
#                          after the self-tests (e.g. NCU_ARGS="-k regex:kspec -c 2 --section SpeedOfLight")
#   NVCC_EXTRA             selftests stage: more nvcc flags (e.g. -lineinfo for ncu's source view)
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
OUT=${OUT:-$ROOT/build/device_out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
PYTHON=${PYTHON:-python3}
SUMMARY=$OUT/summary.txt

stages=("$@")
if [ ${#stages[@]} -eq 0 ]; then
  stages=(info build test errors sanitize bench hyena)
fi
for s in "${stages[@]}"; do
  case $s in
    info | build | test | errors | sanitize | bench | hyena | selftests) ;;
    *) echo "unknown stage '$s' (stages: info build test errors sanitize bench hyena selftests)" >&2; exit 2 ;;
  esac
done

overall=0
# run_stage NAME LOG COMMAND...: output to the terminal and to $OUT/LOG; the outcome to summary.txt.
run_stage() {
  local name=$1 log=$OUT/$2
  shift 2
  local start=$SECONDS rc=0
  echo "=== $name: $* ($(date -u +%H:%M:%S) UTC)" | tee -a "$log"
  "$@" 2>&1 | tee -a "$log" || rc=$?
  local took=$((SECONDS - start))
  if [ "$rc" -eq 0 ]; then
    echo "$name: passed (${took} s)" | tee -a "$SUMMARY"
  else
    echo "$name: FAILED (exit $rc, ${took} s; see $(basename "$log"))" | tee -a "$SUMMARY"
    overall=1
  fi
}

gpu_arch() {
  # compute capability "9.0" -> "90a" (Hopper's wgmma needs the arch-specific target), "8.0" -> "80".
  local cc
  cc=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -n 1 | tr -d ' .')
  case $cc in
    "") echo "80;90a" ;;
    90) echo "90a" ;;
    *) echo "$cc" ;;
  esac
}

stage_info() {
  nvidia-smi || true
  nvcc --version || true
  command -v compute-sanitizer || true
  "$PYTHON" - <<'EOF'
import sys, jax, jaxlib
print("python", sys.version.split()[0], sys.executable)
print("jax", jax.__version__, "jaxlib", jaxlib.__version__)
print("devices", jax.devices())
for d in jax.devices():
    print(d, d.device_kind, (d.memory_stats() or {}).get("bytes_limit"))
EOF
}

stage_build() {
  export JFF_CUDA=ON
  export JFF_CUDA_ARCHS=${JFF_CUDA_ARCHS:-$(gpu_arch)}
  echo "JFF_CUDA_ARCHS=$JFF_CUDA_ARCHS"
  "$PYTHON" -m pip install --no-build-isolation --no-deps --no-index -v . || return $?
  # From /tmp, so the source tree (which has no compiled module) cannot shadow the installed package.
  (cd /tmp && "$PYTHON" -c "import jax_flashfft as j; print('installed', j.__file__, 'cuda_available', j.cuda_available()); assert j.cuda_available()")
}

# pytest runs from tests/: the repository root is then not on sys.path and the installed package is tested.
stage_test_gpu() {
  local rc=0
  (cd tests && "$PYTHON" -m pytest -p no:cacheprovider -rfEs -m gpu ${PYTEST_ARGS:-} .) || rc=$?
  if [ "$rc" -eq 5 ]; then
    echo "no test is marked gpu"
    rc=0
  fi
  return $rc
}

stage_test_all() {
  (cd tests && "$PYTHON" -m pytest -p no:cacheprovider -rfEs ${PYTEST_ARGS:-} .)
}

# Each op forward and backward once, over shapes that reach the kernels' different paths (tails, odd sizes,
# every layout and dtype, gates present and absent, the largest fused FFT and the outer pass beyond it).
write_sanitize_script() {
  cat >"$1" <<'EOF'
import sys
import numpy as np
import jax
import jax.numpy as jnp
import jax_flashfft as jff

assert jff.cuda_available(), "jax_flashfft was built without CUDA"
assert jax.devices()[0].platform == "gpu", jax.devices()
rng = np.random.default_rng(0)


def arr(shape, dtype):
    return jax.device_put(rng.standard_normal(shape, dtype=np.float32)).astype(dtype)


def fftconv_case(lead, h, length, lk, fft_size, layout, dtype, pre, post, skip):
    shape = lead + ((h, length) if layout == "BHL" else (length, h))
    u, dy = arr(shape, dtype), arr(shape, dtype)
    k = arr((h, lk), jnp.float32)
    gates = {"pre_gate": arr(shape, dtype) if pre else None, "post_gate": arr(shape, dtype) if post else None}
    s = arr((h,), jnp.float32) if skip else None

    def f(u, k, g, s):
        return jff.fftconv(u, k, pre_gate=g["pre_gate"], post_gate=g["post_gate"], skip=s,
                           fft_size=fft_size, layout=layout, backend="ffi")

    y, vjp = jax.vjp(f, u, k, gates, s)
    grads = vjp(dy)
    jax.block_until_ready((y, grads))
    assert bool(jnp.all(jnp.isfinite(y.astype(jnp.float32)))), "non-finite fftconv output"
    print("fftconv ok", lead, h, length, lk, fft_size, layout, jnp.dtype(dtype).name, pre, post, skip, flush=True)


def depthwise_case(lead, d, length, k, padding, layout, dtype, w_dtype, bias):
    shape = lead + ((length, d) if layout == "BLH" else (d, length))
    x = arr(shape, dtype)
    w = arr((k, d), w_dtype)
    b = arr((d,), w_dtype) if bias else None

    def f(x, w, b):
        return jff.depthwise_conv1d(x, w, b, padding=padding, layout=layout, backend="ffi")

    y, vjp = jax.vjp(f, x, w, b)
    grads = vjp(arr(y.shape, dtype))
    jax.block_until_ready((y, grads))
    assert bool(jnp.all(jnp.isfinite(y.astype(jnp.float32)))), "non-finite depthwise output"
    print("depthwise ok", lead, d, length, k, padding, layout, jnp.dtype(dtype).name, jnp.dtype(w_dtype).name,
          bias, flush=True)


bf16, f16, f32 = jnp.bfloat16, jnp.float16, jnp.float32
fftconv_case((2,), 4, 256, 256, 256, "BHL", bf16, True, True, True)
fftconv_case((2,), 5, 1000, 1000, None, "BLH", f16, True, False, False)
fftconv_case((), 3, 4096, 17, None, "BHL", f32, False, True, True)
fftconv_case((2, 1), 2, 8192, 8192, 8192, "BLH", bf16, True, True, False)
fftconv_case((1,), 2, 16384, 16384, None, "BHL", bf16, True, True, False)
fftconv_case((1,), 2, 32768, 32768, 32768, "BHL", bf16, True, True, True)
fftconv_case((1,), 2, 40000, 1000, None, "BHL", bf16, False, False, False)
fftconv_case((1,), 1, 3, 1, None, "BLH", f32, False, False, False)

for k in (1, 3, 4, 5, 7, 64, 128):
    depthwise_case((2,), 37, 300, k, "same", "BLH", f16, f16, True)
depthwise_case((2,), 768, 1024, 5, "causal", "BLH", bf16, f32, True)
depthwise_case((2,), 768, 1024, 5, "causal", "BHL", bf16, bf16, False)
depthwise_case((1,), 64, 5000, 4, (7, 0), "BHL", f32, f32, True)
depthwise_case((3,), 16, 2, 5, "same", "BLH", f16, f32, False)
depthwise_case((), 130, 257, 128, "valid", "BHL", bf16, f32, True)
print("sanitize script done")
EOF
}

stage_sanitize() {
  local script rc=0 tool
  script=$(mktemp /tmp/jff_sanitize_XXXXXX.py)
  write_sanitize_script "$script"
  if ! command -v compute-sanitizer >/dev/null; then
    echo "compute-sanitizer not found"
    return 1
  fi
  # XLA reserves most of the GPU's memory up front unless told not to; sanitizer tools need room of their own.
  export XLA_PYTHON_CLIENT_PREALLOCATE=false
  for tool in ${SANITIZE_TOOLS:-memcheck racecheck}; do
    local filter=()
    # Shared-memory race and barrier checks on our kernels only (namespace jff); memcheck checks every kernel.
    case $tool in racecheck | synccheck) filter=(--kernel-name kns=jff) ;; esac
    echo "--- compute-sanitizer --tool $tool"
    compute-sanitizer --tool "$tool" "${filter[@]}" --target-processes all --error-exitcode 99 --print-limit 100 \
      "$PYTHON" "$script" || rc=1
  done
  # The long-N path through XLA at N = 64K and 1M (forward, backward, float64 check of y).
  echo "--- compute-sanitizer --tool memcheck benchmarks/sanitize_long.py"
  (cd /tmp && compute-sanitizer --tool memcheck --error-exitcode 99 --print-limit 100 \
    "$PYTHON" "$ROOT/benchmarks/sanitize_long.py") || rc=1
  rm -f "$script"
  return $rc
}

stage_bench() {
  local rc=0
  mkdir -p benchmarks/results
  # shellcheck disable=SC2086  # the *_ARGS variables are word lists on purpose
  "$PYTHON" benchmarks/bench_fftconv.py ${BENCH_FFTCONV_ARGS:-} || rc=1
  # shellcheck disable=SC2086
  "$PYTHON" benchmarks/bench_depthwise.py ${BENCH_DEPTHWISE_ARGS:-} || rc=1
  return $rc
}

# The end-to-end figures of issue 6: one Hyena training step, both backends, and the example at seq-len 8192.
stage_hyena() {
  local rc=0
  mkdir -p benchmarks/results
  # shellcheck disable=SC2086
  "$PYTHON" benchmarks/bench_hyena_step.py ${BENCH_HYENA_ARGS:-} || rc=1
  "$PYTHON" examples/associative_recall.py --seq-len 8192 --backend both --steps "${EXAMPLE_STEPS:-300}" --quiet || rc=1
  return $rc
}

# The standalone self-tests (each file's header says what it checks), compiled for this GPU, then run: the
# correctness cases and timed tables, and compute-sanitizer over their small cases.
stage_selftests() {
  local arch bin=$ROOT/build/selftests jaxinc rc=0
  arch=$(gpu_arch | cut -d';' -f1)
  mkdir -p "$bin"
  jaxinc=$("$PYTHON" -c "import jax.ffi; print(jax.ffi.include_dir())") || return 1
  # shellcheck disable=SC2206  # NVCC_EXTRA is a word list
  local nv=(nvcc -std=c++17 -O3 "-gencode=arch=compute_${arch},code=sm_${arch}" ${NVCC_EXTRA:-} -Icuda "-I$jaxinc")
  local prog progs=()
  if [ -n "${SELFTESTS:-}" ]; then
    IFS=',' read -r -a progs <<<"$SELFTESTS"
  else
    progs=(monarch_selftest monarch_bwd_selftest short_selftest "generic_selftest --quick" "dw_selftest --check"
           fft_smem_test outer_selftest "outer_selftest --inner --big" long_bwd_selftest "long_bwd_selftest --big"
           "outer_selftest --bench" "long_bwd_selftest --bench")
  fi
  # Only the programs named (and the ones the profile stage names), in parallel: each is one or two
  # translation units and the machine has cores to spare.
  local profs=()
  [ -z "${PROFILE:-}" ] || IFS=',' read -r -a profs <<<"$PROFILE"
  local names=" ${progs[*]%% *} ${profs[*]%% *} " pids=() pid
  build_one() {  # NAME SOURCES/FLAGS...: built when NAME is wanted
    local name=$1
    shift
    case $names in *" $name"*) "${nv[@]}" -o "$bin/$name" "$@" & pids+=($!) ;; esac
  }
  build_one monarch_selftest cuda/fftconv/monarch_selftest.cu cuda/fftconv/monarch_fwd.cu
  build_one monarch_bwd_selftest -DJFF_WITH_FWD cuda/fftconv/monarch_bwd_selftest.cu cuda/fftconv/monarch_bwd.cu \
    cuda/fftconv/monarch_fwd.cu
  build_one short_selftest cuda/fftconv/short_selftest.cu
  build_one generic_selftest --expt-relaxed-constexpr cuda/fftconv/generic_selftest.cu
  build_one dw_selftest cuda/depthwise/depthwise_selftest.cu cuda/depthwise/depthwise_kernels.cu
  build_one outer_selftest cuda/fftconv_long/outer_selftest.cu
  build_one long_bwd_selftest cuda/fftconv_long/long_bwd_selftest.cu
  build_one fft_smem_test cuda/fftconv_long/fft_smem_test.cu
  for pid in "${pids[@]}"; do wait "$pid" || rc=1; done
  for prog in "${progs[@]}"; do
    echo "--- $prog"
    # shellcheck disable=SC2086  # program and its flags
    (cd "$bin" && ./$prog) || rc=1
  done
  for prog in "${profs[@]}"; do
    echo "--- ncu ${NCU_ARGS:-} $prog"
    # shellcheck disable=SC2086
    (cd "$bin" && ncu ${NCU_ARGS:-} ./$prog) || rc=1
  done
  [ "${SELFTESTS_SANITIZE:-1}" = 0 ] || OUT=$OUT/sanitize_selftests bash benchmarks/sanitize_selftests.sh "$bin" || rc=1
  [ -d "$OUT/sanitize_selftests" ] && (cd "$OUT" && tar czf sanitize_selftests.tar.gz sanitize_selftests && rm -r sanitize_selftests)
  return $rc
}

collect_results() {
  local files
  files=$(cd benchmarks/results && ls -- *.json *.png 2>/dev/null)
  [ -n "$files" ] || return 0
  (cd benchmarks/results && tar czf "$OUT/results.tar.gz" $files)
  local room
  room=$((8 - $(find "$OUT" -maxdepth 1 -type f ! -name '.*' | wc -l)))
  for f in benchmarks/results/*.json; do
    [ "$room" -gt 0 ] || break
    cp "$f" "$OUT/" && room=$((room - 1))
  done
}

for s in "${stages[@]}"; do
  case $s in
    info) run_stage info info.log stage_info ;;
    build) run_stage build build.log stage_build ;;
    test)
      run_stage "test (gpu)" test.log stage_test_gpu
      run_stage "test (all)" test.log stage_test_all
      ;;
    errors) run_stage errors errors.log "$PYTHON" benchmarks/diagnose_handler_errors.py ;;
    selftests) run_stage selftests selftests.log stage_selftests ;;
    sanitize) run_stage sanitize sanitize.log stage_sanitize ;;
    bench)
      run_stage bench bench.log stage_bench
      collect_results
      ;;
    hyena)
      run_stage hyena hyena.log stage_hyena
      collect_results
      ;;
  esac
done

echo "=== summary"
cat "$SUMMARY"
exit $overall
