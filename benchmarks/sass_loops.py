#!/usr/bin/env python3
"""Static SASS instruction counts of a kernel's loops, by instruction class (no GPU needed).

The fused kernels are issue-bound (notes_monarch.md, sessions 13-15): fewer instructions per row pair has
been worth as much as fewer bytes. This reads `cuobjdump -sass` output, finds each kernel's loops (a
backward branch closes one: its body runs from the branch target to the branch) and prints, per loop, the
instruction count by class, so that a change's effect on the hot loops can be read on a CPU-only machine.

    nvcc ... -cubin -o k.cubin cuda/fftconv/monarch_fwd.cu
    cuobjdump -sass k.cubin > k.sass          # cuobjdump: the nvidia-cuda-cuobjdump wheel has one
    python benchmarks/sass_loops.py k.sass --match 'monarch_fwd_big_kernel.*bf16.*Li16ELi16E'

Counts are static (a loop's body once), nested loops are listed both on their own and inside their parent.

    python benchmarks/sass_loops.py --ptxas old.log new.log [--match RE]

compares two `nvcc -Xptxas -v` logs instead: each kernel whose registers or spill stores changed.
"""
import argparse
import re
import sys
from collections import Counter

CLASSES = [
    ("mma", r"^(HMMA|IMMA|HGMMA|MOVM)"),
    ("fp32", r"^(FFMA|FMUL|FADD|FMNMX|FSETP|FSEL|FRND|MUFU|FCHK)"),
    ("pack", r"^(F2FP|F2F|I2F|F2I|HADD2|HMUL2|HFMA2|PRMT)"),
    ("smem", r"^(LDS|STS|LDSM|ATOMS)"),
    ("gmem", r"^(LDG|STG|LD|ST|RED|ATOM|LDGSTS|LDGDEPBAR|UBLKCP|UTMA|SYNCS|CCTL)"),
    ("move", r"^(MOV|IMAD\.MOV|SHFL|UMOV|S2R|S2UR|CS2R|R2UR)"),
    ("int", r"^(IMAD|IADD|LOP|SHF|LEA|ISETP|SEL|IABS|IMNMX|POPC|FLO|BMSK|SGXT|U[A-Z0-9]+)"),
    ("ctrl", r"^(BRA|BAR|BSSY|BSYNC|WARPSYNC|EXIT|RET|CALL|NOP|DEPBAR|YIELD|ELECT|VOTE|PLOP3|P2R|R2P)"),
]
CLASS_RE = [(name, re.compile(rx)) for name, rx in CLASSES]
INSN_RE = re.compile(r"/\*([0-9a-f]{4,})\*/\s+(?:@!?U?P\w+\s+)?([A-Z][A-Z0-9_.]*)([^;]*);")


def classify(op):
    if op.startswith("IMAD.MOV"):
        return "move"
    for name, rx in CLASS_RE:
        if rx.match(op):
            return name
    return "other"


def parse_functions(text):
    """{mangled name: [(address, opcode, operands)]} from cuobjdump -sass output."""
    funcs, name = {}, None
    for line in text.splitlines():
        m = re.search(r"Function : (\S+)", line)
        if m:
            name = m.group(1)
            funcs[name] = []
            continue
        if name is None:
            continue
        m = INSN_RE.search(line)
        if m:
            funcs[name].append((int(m.group(1), 16), m.group(2), m.group(3)))
    return funcs


def loops_of(insns):
    """[(start index, end index)] for each backward branch, outermost first."""
    index = {addr: i for i, (addr, _, _) in enumerate(insns)}
    found = []
    for i, (addr, op, args) in enumerate(insns):
        if not op.startswith("BRA"):
            continue
        m = re.search(r"0x([0-9a-f]+)", args)
        if not m:
            continue
        target = int(m.group(1), 16)
        if target <= addr and target in index:
            found.append((index[target], i))
    return sorted(set(found), key=lambda se: (se[0], -se[1]))


def summarize(insns):
    c = Counter(classify(op) for _, op, _ in insns)
    return c, len(insns)


def parse_ptxas(path):
    """{kernel: (registers, spill store bytes)} from an `nvcc -Xptxas -v` log."""
    out, cur = {}, None
    for line in open(path):
        m = re.search(r"(?:Compiling entry function|Function properties for) '?([^' ]+)'?", line)
        if m:
            # Anonymous-namespace names carry a hash of the source path: drop it, so that builds of one file
            # from two checkouts compare.
            cur = re.sub(r"_GLOBAL__N__[0-9a-f]+_", "_GLOBAL__N__", m.group(1).strip())
            continue
        if cur is None:
            continue
        regs, spill = out.get(cur, (None, None))
        m = re.search(r"(\d+) bytes spill stores", line)
        if m:
            spill = int(m.group(1))
        m = re.search(r"Used (\d+) registers", line)
        if m:
            regs = int(m.group(1))
        out[cur] = (regs, spill)
    return out


def compare_ptxas(old_path, new_path, match):
    old, new = parse_ptxas(old_path), parse_ptxas(new_path)
    rx = re.compile(match)
    changed = 0
    for name in sorted(set(old) & set(new)):
        if rx.search(name) and old[name] != new[name]:
            changed += 1
            (r0, s0), (r1, s1) = old[name], new[name]
            print(f"{name}: registers {r0} -> {r1}, spill stores {s0} -> {s1} bytes")
    print(f"{changed} of {len(set(old) & set(new))} kernels changed")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("sass", nargs="+", help="cuobjdump -sass output (with --ptxas: the two ptxas logs)")
    ap.add_argument("--ptxas", action="store_true", help="compare two ptxas -v logs")
    ap.add_argument("--match", default=".", help="regex on the mangled kernel name")
    ap.add_argument("--min", type=int, default=20, help="smallest loop body to list")
    ap.add_argument("--ops", action="store_true", help="also list each loop's most frequent opcodes")
    args = ap.parse_args()
    if args.ptxas:
        if len(args.sass) != 2:
            sys.exit("--ptxas takes two logs: old and new")
        compare_ptxas(args.sass[0], args.sass[1], args.match)
        return
    funcs = parse_functions(open(args.sass[0]).read())
    rx = re.compile(args.match)
    names = [n for n in funcs if rx.search(n)]
    if not names:
        sys.exit(f"no kernel matches {args.match!r}")
    cols = [name for name, _ in CLASSES] + ["other"]
    for name in names:
        insns = funcs[name]
        total, n = summarize(insns)
        print(f"\n{name}: {n} instructions")
        print(f"  {'loop (addresses)':<22}{'insns':>7}" + "".join(f"{c:>7}" for c in cols))
        for s, e in loops_of(insns):
            body = insns[s:e + 1]
            if len(body) < args.min:
                continue
            c, k = summarize(body)
            span = f"{insns[s][0]:05x}-{insns[e][0]:05x}"
            print(f"  {span:<22}{k:>7}" + "".join(f"{c.get(col, 0):>7}" for col in cols))
            if args.ops:
                top = Counter(op for _, op, _ in body).most_common(12)
                print("      " + ", ".join(f"{op} {cnt}" for op, cnt in top))
        print(f"  {'whole kernel':<22}{n:>7}" + "".join(f"{total.get(col, 0):>7}" for col in cols))


if __name__ == "__main__":
    main()
