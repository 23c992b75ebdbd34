# Quick start: `make demo` and `make test`. Both create .venv, install the package into it and run.
#
#   make test                  the test suite against the package installed in .venv (CPU; GPU tests too where
#                              a GPU and nvcc exist)
#   make demo                  example training run, then the quick CPU benchmark tables
#   JFF_CUDA=OFF make test     skip the CUDA build even where nvcc is found
#   make test JAX="jax[cuda13]"  a CUDA build of jax in a new .venv (make clean first), so the GPU tests run too
#   make compile-cuda          compile the CUDA sources only (no GPU needed)
#   make emulate               run kernel self-tests on the CPU (CUDA headers needed, no GPU)
#   make inplace               developer loop: build the CPU extension into jax_flashfft/ (use PYTHONPATH=.)
PYTHON ?= python3
VENV ?= .venv
# Absolute, so that recipes which change directory (tests/) still find it.
PY := $(abspath $(VENV))/bin/python
PIP := $(PY) -m pip
PYTEST_ARGS ?=
# The jax requirement installed into .venv: JAX="jax[cuda13]" for a CUDA build of jax, so that the GPU tests run.
JAX ?= jax

SOURCES := $(shell find cuda jax_flashfft \( -name '*.cc' -o -name '*.cu' -o -name '*.h' -o -name '*.py' \) -not -path '*/__pycache__/*' 2>/dev/null)

.PHONY: demo test install deps inplace clean compile-cuda emulate

# Runtime and test dependencies come from pyproject.toml's extras. The build requirements are installed into
# the venv too so that the package builds without isolation: its FFI headers then come from the very jaxlib
# it runs against, and rebuilds reuse build/ instead of starting from scratch.
$(VENV)/.deps: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q "$(JAX)" "scikit-build-core>=0.10" "nanobind>=2.4" "cmake>=3.24" ninja
	touch $@

$(VENV)/.installed: $(VENV)/.deps CMakeLists.txt $(SOURCES)
	$(PIP) install -q --no-build-isolation ".[test,bench]"
	touch $@

deps: $(VENV)/.deps

install: $(VENV)/.installed

demo: install
	$(PY) examples/associative_recall.py --quiet
	$(PY) benchmarks/bench_fftconv.py --quick --out build/bench
	$(PY) benchmarks/bench_depthwise.py --quick --out build/bench

# pytest runs from tests/ so that the repository root, where jax_flashfft/ holds the sources without the
# compiled extension, is never on sys.path: the tests import the installed package. pytest's exit status 5
# (no test collected) is not a failure of the code under test.
test: install
	cd tests && $(PY) -c "import jax_flashfft as j; print('testing', j.__file__, '(CUDA handlers: %s)' % j.cuda_available())"
	cd tests && $(PY) -m pytest -p no:cacheprovider -rfEs $(PYTEST_ARGS) .; rc=$$?; [ $$rc -eq 5 ] && rc=0; exit $$rc

# Developer loop: build the extensions into the source tree (CPU only by default).
inplace:
	cmake -S . -B build/inplace -G Ninja -DJFF_CUDA=$${JFF_CUDA:-OFF} -DPython_EXECUTABLE=$$(which $(PYTHON)) >/dev/null
	cmake --build build/inplace
	cp build/inplace/_jff_*.so jax_flashfft/

# Compile-only check of the CUDA sources (no GPU needed): the CUDA module alone, with the venv's nanobind and
# jaxlib headers, for JFF_CUDA_ARCHS (default both targets, so the Ampere and the Hopper code paths are compiled).
compile-cuda: $(VENV)/.deps
	PATH=$(abspath $(VENV))/bin:$$PATH cmake -S . -B build/cuda-check -G Ninja -DJFF_CUDA=ON "-DJFF_CUDA_ARCHS=$${JFF_CUDA_ARCHS:-80;90a}" -DPython_EXECUTABLE=$(PY) >/dev/null
	PATH=$(abspath $(VENV))/bin:$$PATH cmake --build build/cuda-check --target _jff_cuda

# CUDA kernels run on the CPU: each self-test compiled as C++ with every CUDA thread a fiber (the kernels'
# own source, no GPU; mma/ldmatrix emulated from their fragment layouts), small cases against float64: the
# generic fftconv kernels, the long-N passes (forward and backward) and their shared-memory FFT, the tensor-core
# forward and backward (monarch_fwd.cu, monarch_bwd.cu: their self-tests' --small cases, N = 256 .. 32768; and
# short_conv.cu, L <= 128) and
# the depthwise kernels (dw_selftest --small: both layouts, every path and variant, PDL chains). CUDA_INC: the
# CUDA toolkit's headers.
CUDA_INC ?= $(firstword $(wildcard /usr/local/cuda/include /usr/local/cuda-*/include))
emulate: $(VENV)/.deps
	mkdir -p build/emu
	g++ -std=c++17 -O2 -x c++ -DJFF_GENERIC_HOST_EMULATION -I$(CUDA_INC) -I$$($(PY) -c "import jax.ffi; print(jax.ffi.include_dir())") \
		-Icuda cuda/fftconv/generic_selftest.cu -o build/emu/generic_selftest
	build/emu/generic_selftest --quick > build/emu/generic_selftest.log; rc=$$?; tail -n 1 build/emu/generic_selftest.log; exit $$rc
	# The long path's float64 math and index maps (plain g++).
	g++ -std=c++17 -O2 -Icuda -o build/emu/long_math_test cuda/fftconv_long/long_math_test.cc
	build/emu/long_math_test > build/emu/long_math_test.log; rc=$$?; tail -n 1 build/emu/long_math_test.log; exit $$rc
	CUDA_INC=$(CUDA_INC) sh cuda/fftconv_long/emu_build.sh build/emu/outer_selftest
	build/emu/outer_selftest --quick > build/emu/outer_selftest.log; rc=$$?; tail -n 1 build/emu/outer_selftest.log; exit $$rc
	# The outer passes' load and twiddle variants (TMA stages, cp.async staging, plain loads, twiddles in shared
	# memory: each on at some outer sizes by default) change how data reach the arithmetic, not the arithmetic: with
	# the cp.async forms everywhere and the inverse's old epilogue (1), with plain loads everywhere, the inner step's
	# too (0), and with every TMA path (t: more stages, TMA stores, the inverse epilogue's other chunk order, the
	# register epilogue at every size, the forward's compact planes, the inner step's L2 prefetch), the output must
	# equal the default build's line for line.
	for v in 1 0 t; do \
		case $$v in \
		1) d="-DJFF_LONG_FWD_TMA=0 -DJFF_LONG_INV_TMA=0 -DJFF_LONG_INV2_TMA=0 -DJFF_LONG_FWD_STAGE=1 -DJFF_LONG_INV_STAGE=1 -DJFF_LONG_INV2_STAGE=1 -DJFF_LONG_SMEM_TW=1 -DJFF_LONG_INV_REG_EPI=0";; \
		0) d="-DJFF_LONG_FWD_TMA=0 -DJFF_LONG_INV_TMA=0 -DJFF_LONG_INV2_TMA=0 -DJFF_LONG_FWD_STAGE=0 -DJFF_LONG_INV_STAGE=0 -DJFF_LONG_INV2_STAGE=0 -DJFF_LONG_SMEM_TW=0 -DJFF_LONG_INNER_STAGE=0";; \
		t) d="-DJFF_LONG_FWD_TMA=3 -DJFF_LONG_INV_TMA=3 -DJFF_LONG_INV2_TMA=2 -DJFF_LONG_FWD_TMA_STORE=1 -DJFF_LONG_INV_TMA_STORE=1 -DJFF_LONG_TILE_ORDER=0 -DJFF_LONG_INV_REG_EPI=1 -DJFF_LONG_FWD_CPLANE=1 -DJFF_LONG_INNER_PREFETCH=1";; \
		esac; \
		CUDA_INC=$(CUDA_INC) CXX="g++ $$d" sh cuda/fftconv_long/emu_build.sh build/emu/outer_selftest_v$$v || exit 1; \
		build/emu/outer_selftest_v$$v --quick > build/emu/outer_selftest_v$$v.log; \
		if cmp -s build/emu/outer_selftest_v$$v.log build/emu/outer_selftest.log; then \
			echo "outer pass variants ($$d): output equal to the default build's"; \
		else echo "outer pass variants ($$d): FAIL"; exit 1; fi; \
	done
	# The shared-memory bank profiler (cuda/common/emu_banks.h) against kernels of known bank behaviour.
	CUDA_INC=$(CUDA_INC) CXX="bash cuda/common/emu_banks_cxx.sh" \
		sh cuda/fftconv_long/emu_build.sh build/emu/emu_banks_test cuda/common/emu_banks_test.cu
	JFF_EMU_BANKS_OUT=build/emu/emu_banks_test.tsv build/emu/emu_banks_test > build/emu/emu_banks_test.log; rc=$$?; \
		tail -n 1 build/emu/emu_banks_test.log; exit $$rc
	CUDA_INC=$(CUDA_INC) sh cuda/fftconv_long/emu_build.sh build/emu/fft_smem_test cuda/fftconv_long/fft_smem_test.cu
	build/emu/fft_smem_test > build/emu/fft_smem_test.log; rc=$$?; tail -n 1 build/emu/fft_smem_test.log; exit $$rc
	CUDA_INC=$(CUDA_INC) sh cuda/fftconv_long/emu_build.sh build/emu/long_bwd_selftest cuda/fftconv_long/long_bwd_selftest.cu
	build/emu/long_bwd_selftest --quick > build/emu/long_bwd_selftest.log; rc=$$?; tail -n 1 build/emu/long_bwd_selftest.log; exit $$rc
	# The backward's output-neutral switches flipped (the CUDA-core dk_spec without its prefetched S update; the
	# two-output inverse and the forward's stores by TMA with the inverse epilogue's other chunk order and the register
	# epilogue at every size, plain loads in the outer passes and the inner steps): the same
	# arithmetic, the same output.
	for d in "-DJFF_LONG_DK_PREFETCH=0" "-DJFF_LONG_INV2_TMA=2 -DJFF_LONG_FWD_TMA_STORE=1 -DJFF_LONG_INV_TMA_STORE=1 -DJFF_LONG_TILE_ORDER=0 -DJFF_LONG_INV_REG_EPI=1" \
		"-DJFF_LONG_FWD_TMA=0 -DJFF_LONG_INV_TMA=0 -DJFF_LONG_INV2_TMA=0 -DJFF_LONG_INNER_STAGE=0"; do \
		CUDA_INC=$(CUDA_INC) CXX="g++ $$d" \
			sh cuda/fftconv_long/emu_build.sh build/emu/long_bwd_selftest_v1 cuda/fftconv_long/long_bwd_selftest.cu || exit 1; \
		build/emu/long_bwd_selftest_v1 --quick > build/emu/long_bwd_selftest_v1.log; \
		if cmp -s build/emu/long_bwd_selftest_v1.log build/emu/long_bwd_selftest.log; then \
			echo "long backward variant ($$d): output equal to the default build's"; \
		else echo "long backward variant ($$d): FAIL"; exit 1; fi; \
	done
	CUDA_INC=$(CUDA_INC) PYTHON=$(PY) sh cuda/fftconv/monarch_emu_build.sh build/emu/monarch_selftest
	build/emu/monarch_selftest --small > build/emu/monarch_selftest.log; rc=$$?; tail -n 1 build/emu/monarch_selftest.log; exit $$rc
	# The BLH tiles' other unit order (JFF_BLH_UNIT_ORDER=1: the same units, another assignment to threads) and the
	# k spectrum's other lane order (JFF_KSPEC_ORDER=0, the default before session 40: the same slots, another
	# walk): the forward's output must equal the default build's (the backward's dskip sums the BLH units in another
	# order, so only the k-spectrum order there).
	CUDA_INC=$(CUDA_INC) PYTHON=$(PY) CXX="g++ -DJFF_BLH_UNIT_ORDER=1 -DJFF_KSPEC_ORDER=0" \
		sh cuda/fftconv/monarch_emu_build.sh build/emu/monarch_selftest_other_order
	build/emu/monarch_selftest_other_order --small > build/emu/monarch_selftest_other_order.log; \
		if cmp -s build/emu/monarch_selftest_other_order.log build/emu/monarch_selftest.log; then \
			echo "BLH unit order 1, k-spectrum order 0: output equal to the default build's"; \
		else echo "BLH unit order 1, k-spectrum order 0: FAIL"; exit 1; fi
	# The short tensor-core kernels (short_conv.cu, L <= 256), forward and backward: the fixed cases and 16 random
	# shapes (a seed of its own per CI run would make failures hard to reproduce: fixed here, vary it by hand).
	CUDA_INC=$(CUDA_INC) PYTHON=$(PY) sh cuda/fftconv/short_emu_build.sh build/emu/short_selftest
	build/emu/short_selftest --small --fuzz 16 --seed 37 > build/emu/short_selftest.log; rc=$$?; \
		tail -n 1 build/emu/short_selftest.log; exit $$rc
	CUDA_INC=$(CUDA_INC) PYTHON=$(PY) sh cuda/fftconv/monarch_emu_build.sh --bwd build/emu/monarch_bwd_selftest
	build/emu/monarch_bwd_selftest --small > build/emu/monarch_bwd_selftest.log; rc=$$?; tail -n 1 build/emu/monarch_bwd_selftest.log; exit $$rc
	# With it the backward's passes 2 / 4 on the float32 route (JFF_BWD_PACKED_PASSES=0; the default multiplies
	# packed pairs: the same products, so the same bits).
	CUDA_INC=$(CUDA_INC) PYTHON=$(PY) CXX="g++ -DJFF_KSPEC_ORDER=0 -DJFF_BWD_PACKED_PASSES=0" \
		sh cuda/fftconv/monarch_emu_build.sh --bwd build/emu/monarch_bwd_selftest_other_order
	build/emu/monarch_bwd_selftest_other_order --small > build/emu/monarch_bwd_selftest_other_order.log; \
		if cmp -s build/emu/monarch_bwd_selftest_other_order.log build/emu/monarch_bwd_selftest.log; then \
			echo "k-spectrum order 0, float32 passes (backward): output equal to the default build's"; \
		else echo "k-spectrum order 0, float32 passes (backward): FAIL"; exit 1; fi
	# The big backward's shared-memory dk accumulator (N = 2048 .. 16384), which the emulator's occupancy
	# rule (no registers) need not pick by itself.
	rc=0; for n in 2048 4096 8192 16384; do \
		JFF_MONARCH_BWD_ACC=shared build/emu/monarch_bwd_selftest --small --only N$$n || rc=1; \
	done > build/emu/monarch_bwd_shared.log; \
		echo "shared dk accumulator: $$(grep -c ' yes PASS$$' build/emu/monarch_bwd_shared.log) cases passed"; exit $$rc
	# The 32768 partial accumulator (JFF_BWD_PART_ACC_ROWS, default 8): 8 rows in shared memory, the rest in the
	# slot, the same summation order: its output must equal the global-slot kernel's line for line.
	JFF_MONARCH_BWD_ACC=global build/emu/monarch_bwd_selftest --small --only N32768 > build/emu/monarch_bwd_32k.log; \
	JFF_MONARCH_BWD_ACC=shared build/emu/monarch_bwd_selftest --small --only N32768 > build/emu/monarch_bwd_part_acc.log; \
	if cmp -s build/emu/monarch_bwd_part_acc.log build/emu/monarch_bwd_32k.log && grep -q 'ALL PASS' build/emu/monarch_bwd_32k.log; then \
		echo "32768 partial accumulator: output equal to the global slots'"; else echo "32768 partial accumulator: FAIL"; exit 1; fi
	# The balanced tail (JFF_MONARCH_BWD_TAIL=1, monarch_bwd.cu): a 1 MB slot cap (one or two chunks per channel) on 3
	# CTAs, so the last items are split across CTAs. Every case must pass its float64 checks, the tail must have run (the
	# variant report), and du / dpre / dpost must print as without it (columns 1-62: only dk's and dskip's sums split).
	for t in 0 1; do JFF_MONARCH_REPORT=1 JFF_MONARCH_BWD_TAIL=$$t JFF_MONARCH_BWD_ACC=shared JFF_MONARCH_BWD_SLOT_CAP_MB=1 \
		JFF_MONARCH_BWD_GRID=3 build/emu/monarch_bwd_selftest --small --only tail > build/emu/monarch_bwd_tail$$t.log 2>&1; \
	done; \
	n=$$(grep -c ' yes PASS$$' build/emu/monarch_bwd_tail1.log); ran=$$(grep -c 'balanced tail' build/emu/monarch_bwd_tail1.log); \
	for t in 0 1; do grep ' PASS$$\| FAIL$$' build/emu/monarch_bwd_tail$$t.log | cut -c1-62 > build/emu/monarch_bwd_tail$$t.cols; done; \
	if [ $$n -ge 4 ] && [ $$ran -ge 4 ] && grep -q 'ALL PASS' build/emu/monarch_bwd_tail1.log && \
		cmp -s build/emu/monarch_bwd_tail0.cols build/emu/monarch_bwd_tail1.cols; then \
		echo "balanced tail: $$n cases passed, run in $$ran, du / dpre / dpost as without it"; \
	else echo "balanced tail: FAIL"; exit 1; fi
	# Two warp groups per CTA taking turns (JFF_BWD_GROUPS_N, off by default) on one emulated SM, so that each
	# group runs many items and the groups' turn counts differ: every result must equal the one-group kernel's.
	CUDA_INC=$(CUDA_INC) PYTHON=$(PY) CXX="g++ -DJFF_BWD_GROUPS_N=12288 -DJFF_EMU_SMS=1" \
		sh cuda/fftconv/monarch_emu_build.sh --bwd build/emu/monarch_bwd_groups
	for b in groups selftest; do for n in 4096 8192; do \
		JFF_MONARCH_BWD_ACC=shared build/emu/monarch_bwd_$$b --small --only N$$n; \
	done | grep ' PASS$$\| FAIL$$' > build/emu/monarch_bwd_$$b.cases; done; \
	n=$$(grep -c ' yes PASS$$' build/emu/monarch_bwd_groups.cases); \
	if cmp -s build/emu/monarch_bwd_groups.cases build/emu/monarch_bwd_selftest.cases && [ $$n -ge 8 ]; then \
		echo "warp groups: $$n cases passed, equal to one group's"; else echo "warp groups: FAIL"; exit 1; fi
	CUDA_INC=$(CUDA_INC) sh cuda/depthwise/emu_build.sh build/emu/dw_selftest
	build/emu/dw_selftest --small > build/emu/dw_selftest.log; rc=$$?; tail -n 1 build/emu/dw_selftest.log; exit $$rc

clean:
	rm -rf build $(VENV) jax_flashfft/_jff_*.so
