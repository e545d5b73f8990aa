#include <iostream>
#include <string>
#include <vector>

#include "sockmesh/cli/meshctl.h"

int main(int argc, char** argv) {
  return sockmesh::cli::run_meshctl(std::vector<std::string>(argv + 1, argv + argc), std::cout, std::cerr);
}
