// meshctl's whole command line, callable in-process: main() is a thin wrapper, tests call it
// directly.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <ostream>
#include <stop_token>
#include <string>
#include <vector>

#include "sockmesh/common/paths.h"

namespace sockmesh::cli {

// What meshctl takes from the machine, injectable for tests.
struct Environment {
  // Where node agents keep their admin sockets: <run_root>/<node>/admin.sock.
  std::filesystem::path run_root{std::string(paths::kRunRoot)};
  // Wall clock in Unix milliseconds, for uptimes and ages.
  std::function<std::int64_t()> now_unix_ms;
  // Requested when the operator interrupts meshctl (main: SIGINT, SIGTERM): a watch ends with exit
  // 0, any other call is cancelled and meshctl exits 130.
  std::stop_token interrupted;
};

// The system clock, the default of Environment::now_unix_ms.
std::int64_t system_now_unix_ms();

// Runs meshctl with args (without the program name). Output goes to out, errors to err as one line
// starting "meshctl: ". Returns the exit code: 0 success, 1 failure, 2 usage error, 130
// interrupted.
int run_meshctl(const std::vector<std::string> &args, std::ostream &out, std::ostream &err,
                const Environment &env = {});

}  // namespace sockmesh::cli
