// What the fuzz targets share: an invariant that must hold aborts with a message, so libFuzzer
// records the input as a crash (a fuzz target may not use gtest).
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string_view>

#define FUZZ_CHECK(cond, what)                                              \
  do {                                                                      \
    if (!(cond)) ::sockmesh::fuzz::fail(__FILE__, __LINE__, #cond, (what)); \
  } while (0)

namespace sockmesh::fuzz {

[[noreturn]] inline void fail(const char *file, int line, const char *cond, std::string_view what) {
  std::fprintf(stderr, "%s:%d: invariant broken: %s\n  %.*s\n", file, line, cond,
               static_cast<int>(what.size()), what.data());
  std::abort();
}

}  // namespace sockmesh::fuzz
