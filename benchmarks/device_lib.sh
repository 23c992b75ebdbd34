# Shared by the one-call device scripts (device_long.sh, device_depthwise.sh); source it after setting
# OUT (absolute), start=$SECONDS and deadline (seconds the whole call may take).

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

jaxinc=$(python3 -c "import jax.ffi; print(jax.ffi.include_dir())")
# nvcc for the standalone self-tests (Hopper only: these scripts run on an H100/H200).
nv=(nvcc -std=c++17 -O3 -gencode=arch=compute_90a,code=sm_90a --expt-relaxed-constexpr -Icuda "-I$jaxinc")
