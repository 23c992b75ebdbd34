"""Source lines of the emulated kernels by shared-memory bank conflicts (cuda/common/emu_banks.h's profile).

    python benchmarks/emu_banks_report.py BINARY emu_banks.tsv [--top 30] [--match SUBSTRING]

BINARY is the profiled emulation binary (built through cuda/common/emu_banks_cxx.sh), the TSV what its run wrote.
Code addresses are resolved with addr2line (with inlining: the innermost line and the chain of its callers) and
summed per call chain; rows come worst first by excess wavefronts (wavefronts beyond the fewest the same words
could take). --match keeps only chains that mention SUBSTRING (a function or file name); --templates splits the
rows by kernel instantiation (its template arguments: sizes, types); --kernels first prints each kernel
instantiation's total wavefronts and the share beyond the ideal. A lead to read, not a
measurement: the host compiler's accesses are not nvcc's (see emu_banks.h).
"""

from __future__ import annotations

import argparse
import collections
import csv
import os
import subprocess
import sys


def resolve(binary: str, offsets: list[str]) -> dict[str, list[tuple[str, str]]]:
    """offset -> [(function, file:line), ...], innermost first."""
    out = subprocess.run(
        ["addr2line", "-a", "-f", "-C", "-i", "-e", binary],
        input="\n".join(offsets) + "\n",
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    chains: dict[str, list[tuple[str, str]]] = {}
    current = None
    i = 0
    while i < len(out):
        line = out[i]
        if line.startswith("0x"):
            current = hex(int(line, 16))
            chains[current] = []
            i += 1
            continue
        function, where = line, out[i + 1] if i + 1 < len(out) else "??:0"
        chains[current].append((function, where))
        i += 2
    return chains


def short(where: str) -> str:
    path, _, line = where.partition(":")
    parts = path.split(os.sep)
    if "cuda" in parts:
        path = os.sep.join(parts[parts.index("cuda") + 1 :])
    else:
        path = os.path.basename(path)
    return f"{path}:{line.split(' ')[0]}"


def function_name(function: str, templates: bool = False) -> str:
    """'void ns::f<A, B>(args) const' -> 'f' ('f<A, B>' for a kernel with templates=True)."""
    name = function.replace("(anonymous namespace)::", "")
    depth, end, start = 0, len(name), 0
    for i, c in enumerate(name):
        if c == "<":
            depth += 1
        elif c == ">":
            depth -= 1
        elif depth == 0 and c == "(" and i > 0:  # the parameter list ("(" at 0 would be part of the name)
            end = i
            break
        elif depth == 0 and c == " ":  # a return type before the name
            start = i + 1
    name = name[start:end]
    cut = name.find("<")
    qualified = name if cut < 0 else name[:cut]
    base = qualified.split("::")[-1] or name
    if templates and base.endswith("_kernel") and cut >= 0:  # the instantiation: which sizes and types
        return base + name[cut:].replace("jff::", "").replace("jff_emu::", "")
    return base


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("binary")
    ap.add_argument("tsv")
    ap.add_argument("--top", type=int, default=30)
    ap.add_argument("--match", default="")
    ap.add_argument("--templates", action="store_true", help="rows per kernel instantiation (template arguments)")
    ap.add_argument("--kernels", action="store_true", help="first a table per kernel instantiation")
    a = ap.parse_args()

    with open(a.tsv, newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    chains = resolve(a.binary, [r["offset"] for r in rows])
    total = collections.defaultdict(lambda: [0, 0, 0, set()])
    per_kernel = collections.defaultdict(lambda: [0, 0])
    for r in rows:
        chain = chains.get(hex(int(r["offset"], 16)), [])
        kernels = [function_name(fn, True) for fn, _ in chain if function_name(fn).endswith("_kernel")]
        if not a.match or any(a.match in k for k in kernels):
            k = per_kernel[kernels[-1] if kernels else "(outside kernels)"]
            k[0] += int(r["wavefronts"])
            k[1] += int(r["ideal"])
        key = " <- ".join(f"{short(w)} ({function_name(fn, a.templates)})" for fn, w in chain) or r["offset"]
        if a.match and a.match not in key:
            continue
        t = total[key]
        t[0] += int(r["instructions"])
        t[1] += int(r["wavefronts"])
        t[2] += int(r["ideal"])
        t[3].add(f'{r["size"]}{r["rw"]}')
    if a.kernels:
        print(f"{'waves':>10} {'ideal':>10} {'excess':>7}  kernel")
        for name, (waves, ideal) in sorted(per_kernel.items(), key=lambda kv: kv[1][0] - kv[1][1], reverse=True):
            print(f"{waves:10d} {ideal:10d} {100.0 * (waves - ideal) / max(waves, 1):6.1f}%  {name}")
        print()
    all_waves = sum(t[1] for t in total.values())
    all_excess = sum(t[1] - t[2] for t in total.values())
    print(f"{len(total)} access sites; wavefronts {all_waves}, of which beyond the ideal {all_excess}"
          f" ({100.0 * all_excess / max(all_waves, 1):.1f}%)")
    print(f"{'excess':>9} {'waves':>9} {'ideal':>9} {'x':>5} {'instr':>8}  access  site (innermost first)")
    worst = sorted(total.items(), key=lambda kv: kv[1][1] - kv[1][2], reverse=True)
    for key, (instr, waves, ideal, kinds) in worst[: a.top]:
        if waves == ideal:
            break
        print(f"{waves - ideal:9d} {waves:9d} {ideal:9d} {waves / max(ideal, 1):5.2f} {instr:8d}  "
              f"{','.join(sorted(kinds)):6s}  {key}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
