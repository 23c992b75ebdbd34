# The common start of the one-call device scripts (device_*.sh): `source "$(dirname "$0")/device_lib.sh"` as
# their first command. It moves to the repository root, makes $OUT (default build/device_out; absolute, since
# the GPU tests run from tests/) and build/selftests, starts the clock for DEADLINE (seconds the whole call may
# take, default 560), and defines run_left and the self-tests' nvcc command line `nv`.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export OUT=${OUT:-build/device_out} PYTHONUNBUFFERED=1
mkdir -p "$OUT" build/selftests
OUT=$(cd "$OUT" && pwd)
start=$SECONDS
deadline=${DEADLINE:-560}

# run_left LOG COMMAND...: the command under `timeout` with the seconds left, appended to $OUT/LOG;
# skipped when under 20 s are left, so the call ends inside the device's 10-minute limit.
run_left() {
  local log=$OUT/$1 left
  shift
  left=$((deadline - (SECONDS - start)))
  if [ "$left" -lt 20 ]; then
    echo "skipped (${left} s left): $*" | tee -a "$log"
    return 0
  fi
  echo "=== $* ($left s left)" >>"$log"
  timeout "$left" "$@" >>"$log" 2>&1 || echo "exit $?: $*" | tee -a "$log"
}

# gpu_tests EXPR: the GPU tests that `pytest -m gpu -k EXPR` selects (run from tests/, so the installed package is
# tested), appended to $OUT/test.log within the time left.
gpu_tests() {
  (cd tests && run_left test.log python3 -m pytest -p no:cacheprovider -q -rfE -m gpu -k "$1")
}

# run_profiles RUNS: benchmarks/profile_kernels.py once per ';'-separated argument set of RUNS, into profile.log.
run_profiles() {
  local r runs
  IFS=';' read -ra runs <<<"$1"
  for r in "${runs[@]}"; do
    # shellcheck disable=SC2086  # the run's arguments are separate words
    run_left profile.log python3 benchmarks/profile_kernels.py $r
  done
}

jaxinc=$(python3 -c "import jax.ffi; print(jax.ffi.include_dir())")
# nvcc for the standalone self-tests (Hopper only: these scripts run on an H100/H200).
nv=(nvcc -std=c++17 -O3 -gencode=arch=compute_90a,code=sm_90a --expt-relaxed-constexpr -Icuda "-I$jaxinc")
