// Integer A/B switches read from the environment (host code; also in the CPU emulation builds).
#pragma once

#include <cstdint>
#include <cstdlib>

namespace jff {

// The value of environment variable `name` as an integer, `fallback` when unset. Callers keep it in a
// function-local static: a switch is read once per process.
inline int64_t env_int(const char* name, int64_t fallback) {
  const char* v = std::getenv(name);
  return v == nullptr ? fallback : static_cast<int64_t>(std::atoll(v));
}

}  // namespace jff
