// The one kind of failure meshctl reports to the operator.
#pragma once

#include <stdexcept>

namespace sockmesh::cli {

// A failure the operator must see. run_meshctl prints "meshctl: <what()>" as one line on stderr
// and exits 1, so what() is a single sentence that names what failed and where.
class CliError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace sockmesh::cli
