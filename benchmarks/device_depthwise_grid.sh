#!/usr/bin/env bash
# Issue 4's grid device-side in one device call, in parts small enough that a part cut off by the deadline
# loses only itself, from the repository root:
#
#   OUT=/some/dir bash benchmarks/device_depthwise_grid.sh
#
# 1. the package build and, alongside it, dw_selftest; dw_selftest --check and memcheck on --small
#    (SKIP_CHECKS=1 leaves them out);
# 2. bench_depthwise with JFF_BENCH_DEVICE_TIMING=1, forward and fwd+bwd, K 3/4/5/7, both dtypes and layouts,
#    one process per part of PARTS (';'-separated "lengths:channels", default: L = 1K at every D, then
#    L = 4K/8K at D = 768/1024, 2048, 8192), each part's JSON merged into $OUT/<device>-depthwise-grid-device.json;
#    BENCH_ARGS adds to (or, being later, overrides) every part's arguments, e.g. "--dtype bf16 --layout BHL --k 5,7";
# 3. the GPU tests -k depthwise (SKIP_TESTS=1 leaves them out);
# 4. per results file: the largest forward and fwd+bwd ratio to the floor and the smallest speed-ups.
# Every step gets what is left of DEADLINE seconds (default 560).
source "$(dirname "$0")/device_lib.sh"

"${nv[@]}" -o build/selftests/dw_selftest cuda/depthwise/depthwise_selftest.cu \
  cuda/depthwise/depthwise_kernels.cu >"$OUT/selftests.log" 2>&1 &
compile=$!
bash benchmarks/device_run.sh build >"$OUT/build.log" 2>&1
tail -n 1 "$OUT/build.log"
rm -f "$OUT/summary.txt"
wait "$compile" || echo "self-test compile failed" | tee -a "$OUT/selftests.log"
if [ "${SKIP_CHECKS:-0}" != 1 ]; then
  run_left selftests.log build/selftests/dw_selftest --check
  run_left selftests.log compute-sanitizer --tool memcheck --error-exitcode 1 build/selftests/dw_selftest --small
  grep -h "correctness:\|ERROR SUMMARY\|PDL chain" "$OUT/selftests.log"
fi

export JFF_BENCH_DEVICE_TIMING=1
IFS=';' read -ra parts <<<"${PARTS:-1K:768,1024,2048,8192;4K,8K:768,1024;4K,8K:2048;4K,8K:8192}"
i=0
for part in "${parts[@]}"; do
  run_left bench_dw.log python3 benchmarks/bench_depthwise.py --lengths "${part%%:*}" --channels "${part#*:}" \
    --k 3,4,5,7 --target-s 0.1 --modes fwd,fwd+bwd --no-accuracy --out "$OUT/parts" --no-plot --name "depthwise-grid-part$i" \
    ${BENCH_ARGS:-}
  echo "part $part done at $((SECONDS - start)) s"
  i=$((i + 1))
done
device=$(ls "$OUT"/parts/*-depthwise-grid-part*.json 2>/dev/null | head -n 1 | xargs -r basename | sed 's/-depthwise-grid-part.*//')
if [ -n "$device" ]; then
  python3 benchmarks/merge_results.py --no-plot --out "$OUT/$device-depthwise-grid-device.json" "$OUT"/parts/*.json \
    >>"$OUT/bench_dw.log" 2>&1 && rm -rf "$OUT/parts"
fi

if [ "${SKIP_TESTS:-0}" != 1 ]; then
  gpu_tests depthwise
  tail -n 2 "$OUT/test.log"
fi

python3 - "$OUT"/*-depthwise-grid-device.json <<'PY'
import json, sys
for f in sys.argv[1:]:
    rows = json.load(open(f))["rows"]
    for mode, bar in (("fwd", 1.5), ("fwd+bwd", 2.5)):
        sel = [r for r in rows if r["mode"] == mode]
        if not sel:
            continue
        worst = max(sel, key=lambda r: r["ours_ms"] / r["floor_ms"])
        slow = min(r["baseline_ms"] / r["ours_ms"] for r in sel)
        over = [r for r in sel if r["ours_ms"] / r["floor_ms"] > bar]
        print(f"{mode}: {len(sel)} points, worst {worst['ours_ms'] / worst['floor_ms']:.3f}x floor "
              f"({worst['dtype']} {worst['layout']} L={worst['L']} D={worst['D']} K={worst['K']}), "
              f"smallest speed-up {slow:.1f}x, {len(over)} over {bar}x")
        for r in over:
            print(f"  {r['dtype']} {r['layout']} L={r['L']} D={r['D']} K={r['K']}: {r['ours_ms'] / r['floor_ms']:.3f}x")
PY
