"""benchmarks/sass_loops.py: loops and instruction classes from cuobjdump -sass text, ptxas register diffs."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import sass_loops  # noqa: E402

# A cut-down cuobjdump -sass listing: kernel A has an outer loop (0x0020 .. 0x00b0) with a nested one
# (0x0040 .. 0x0080) and a forward branch that is not a loop; kernel B has no loop.
SASS = """
        code for sm_90a
                Function : _Z1AILi16EEvPf
        .headerflags    @"EF_CUDA_TEXMODE_UNIFIED"
        /*0000*/                   S2R R0, SR_TID.X ;                   /* 0x0000000000007919 */
        /*0010*/                   MOV R1, 0x0 ;                        /* 0x0000000000017802 */
        /*0020*/                   LDS.128 R4, [R0] ;                   /* 0x0000000000047984 */
        /*0030*/              @P0  BRA 0x90 ;                           /* 0x0000000000007947 */
        /*0040*/                   HMMA.16816.F32.BF16 R8, R4, R6, R8 ; /* 0x000000060408723c */
        /*0050*/                   FFMA R8, R8, R9, R10 ;               /* 0x0000000908087223 */
        /*0060*/                   IMAD.MOV.U32 R2, RZ, RZ, R3 ;        /* 0x000000ffff027224 */
        /*0070*/                   F2FP.BF16.F32.PACK_AB R2, R8, R9 ;   /* 0x000000090802723e */
        /*0080*/              @!P1 BRA 0x40 ;                           /* 0x0000000000007947 */
        /*0090*/                   STG.E [R2.64], R8 ;                  /* 0x0000000802007986 */
        /*00a0*/                   IADD3 R0, R0, 0x1, RZ ;              /* 0x0000000100007810 */
        /*00b0*/              @!P2 BRA 0x20 ;                           /* 0x0000000000007947 */
        /*00c0*/                   EXIT ;                               /* 0x000000000000794d */
                Function : _Z1BPf
        /*0000*/                   FMUL R0, R1, R2 ;                    /* 0x0000000201007220 */
        /*0010*/                   EXIT ;                               /* 0x000000000000794d */
"""


def test_loops_and_classes():
    funcs = sass_loops.parse_functions(SASS)
    assert set(funcs) == {"_Z1AILi16EEvPf", "_Z1BPf"}
    a = funcs["_Z1AILi16EEvPf"]
    assert len(a) == 13
    loops = sass_loops.loops_of(a)
    # Outermost first; the forward branch at 0x30 is not a loop.
    assert [(a[s][0], a[e][0]) for s, e in loops] == [(0x20, 0xB0), (0x40, 0x80)]
    s, e = loops[1]
    counts, n = sass_loops.summarize(a[s:e + 1])
    assert n == 5
    assert counts == {"mma": 1, "fp32": 1, "move": 1, "pack": 1, "ctrl": 1}
    counts, n = sass_loops.summarize(a[loops[0][0]:loops[0][1] + 1])
    assert n == 10 and counts["smem"] == 1 and counts["gmem"] == 1 and counts["int"] == 1
    assert sass_loops.loops_of(funcs["_Z1BPf"]) == []


PTXAS_OLD = """ptxas info    : Compiling entry function '_ZN3jff12_GLOBAL__N__0123abcd_7_file_cu_99k1Ev' for 'sm_90a'
ptxas info    : Function properties for _ZN3jff12_GLOBAL__N__0123abcd_7_file_cu_99k1Ev
    0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
ptxas info    : Used 96 registers, used 1 barriers
ptxas info    : Compiling entry function '_Z2k2v' for 'sm_90a'
ptxas info    : Function properties for _Z2k2v
    8 bytes stack frame, 8 bytes spill stores, 8 bytes spill loads
ptxas info    : Used 255 registers, used 1 barriers
"""
# The same kernels built from another checkout: the anonymous namespace's path hash differs.
PTXAS_NEW = PTXAS_OLD.replace("0123abcd", "fedc9876").replace("Used 96", "Used 101")


def test_ptxas_compare(tmp_path, capsys):
    old, new = tmp_path / "old.log", tmp_path / "new.log"
    old.write_text(PTXAS_OLD)
    new.write_text(PTXAS_NEW)
    parsed = sass_loops.parse_ptxas(old)
    assert parsed["_Z2k2v"] == (255, 8)
    sass_loops.compare_ptxas(old, new, ".")
    out = capsys.readouterr().out
    assert "registers 96 -> 101, spill stores 0 -> 0 bytes" in out
    assert "_Z2k2v" not in out
    assert "1 of 2 kernels changed" in out
