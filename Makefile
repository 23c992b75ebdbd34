# Quick start: `make demo` and `make test`. Both create .venv, install the package into it and run.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip

.PHONY: demo test install venv inplace clean compile-cuda

$(VENV)/.installed: pyproject.toml CMakeLists.txt $(shell find cuda jax_flashfft -name '*.cc' -o -name '*.cu' -o -name '*.h' -o -name '*.py' 2>/dev/null)
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q ".[test,bench]"
	touch $@

install: $(VENV)/.installed

demo: install
	$(PY) examples/associative_recall.py
	$(PY) benchmarks/bench_fftconv.py --quick
	$(PY) benchmarks/bench_depthwise.py --quick

test: install
	cd tests && ../$(PY) -m pytest -q -x -p no:cacheprovider ..

# Developer loop: build the extensions into the source tree (CPU only by default).
inplace:
	cmake -S . -B build/inplace -G Ninja -DJFF_CUDA=$${JFF_CUDA:-OFF} -DPython_EXECUTABLE=$$(which $(PYTHON)) >/dev/null
	cmake --build build/inplace
	cp build/inplace/_jff_*.so jax_flashfft/

# Compile-only check of the CUDA sources (no GPU needed).
compile-cuda:
	cmake -S . -B build/cuda-check -G Ninja -DJFF_CUDA=ON -DPython_EXECUTABLE=$$(which $(PYTHON)) >/dev/null
	cmake --build build/cuda-check

clean:
	rm -rf build $(VENV) jax_flashfft/_jff_*.so
