// What every in-process meshctl test needs: a private run root under a temporary directory, a
// fixed clock, and meshctl run with its output, error output and exit code captured.
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stop_token>
#include <string>
#include <string_view>
#include <vector>

#include "sockmesh/cli/meshctl.h"

namespace sockmesh::cli::testing {

constexpr std::int64_t kNow = 1'714'564'800'000;  // 2024-05-01 12:00:00 UTC

struct Result {
  int code;
  std::string out;
  std::string err;
};

// Output that requests a stop when it has been flushed a number of times.
class InterruptingBuffer : public std::stringbuf {
 public:
  InterruptingBuffer(std::stop_source interrupt, int flushes)
      : interrupt_(std::move(interrupt)), left_(flushes) {}

 protected:
  int sync() override {
    if (--left_ == 0) interrupt_.request_stop();
    return 0;
  }

 private:
  std::stop_source interrupt_;
  int left_;
};

class MeshctlHarness : public ::testing::Test {
 protected:
  // A fresh directory (removed in TearDown) holding the run root; the clock stands at kNow.
  void SetUp() override {
    std::string tmpl = (std::filesystem::temp_directory_path() / "meshctl-test-XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    env_.run_root = dir_ / "run";
    env_.now_unix_ms = [] { return kNow; };
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  Result run(const std::vector<std::string> &args) {
    std::ostringstream out, err;
    const int code = run_meshctl(args, out, err, env_);
    return {code, out.str(), err.str()};
  }

  // Runs args and interrupts meshctl (as Ctrl-C does) when it has flushed its output `flushes`
  // times.
  Result run_interrupted_after(const std::vector<std::string> &args, int flushes) {
    std::stop_source interrupt;
    env_.interrupted = interrupt.get_token();
    InterruptingBuffer buffer(interrupt, flushes);
    std::ostream out(&buffer);
    std::ostringstream err;
    const int code = run_meshctl(args, out, err, env_);
    return {code, buffer.str(), err.str()};
  }

  // Writes `text` to dir_/name (directories made as needed).
  std::filesystem::path write(const std::string &name, std::string_view text) {
    const auto path = dir_ / name;
    std::filesystem::create_directories(path.parent_path());
    std::ofstream(path) << text;
    return path;
  }

  std::filesystem::path dir_;
  Environment env_;
};

}  // namespace sockmesh::cli::testing
