#include <iostream>
#include <string>
#include <vector>

#include "sockmesh/cli/interrupt.h"
#include "sockmesh/cli/meshctl.h"

int main(int argc, char **argv) {
  sockmesh::cli::Environment env;
  env.interrupted = sockmesh::cli::stop_on_signals();
  return sockmesh::cli::run_meshctl(std::vector<std::string>(argv + 1, argv + argc), std::cout,
                                    std::cerr, env);
}
