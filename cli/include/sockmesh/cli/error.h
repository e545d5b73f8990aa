// The one kind of failure meshctl reports to the operator.
#pragma once

#include <stdexcept>

namespace sockmesh::cli {

// A failure the operator must see. run_meshctl prints "meshctl: <what()>" on stderr and exits 1,
// so what() starts with a sentence that names what failed and where. When there are several
// reasons (an invalid file, a change the control plane refused), that sentence ends in ':' and the
// reasons follow, one line each.
class CliError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The operator interrupted a call (Ctrl-C): run_meshctl exits 130 without a message.
class Interrupted : public std::exception {
 public:
  const char *what() const noexcept override { return "interrupted"; }
};

}  // namespace sockmesh::cli
