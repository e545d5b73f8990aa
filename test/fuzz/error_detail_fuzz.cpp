// NACK details (agent/xds/error_detail.cpp): the fuzzed bytes are one validator error line, which
// carries text from the pushed resources, as meshd reads it (a regular expression) into the
// ErrorDetail it sends meshcp when it refuses a push.
//
// Beyond "no crash": the message is always the whole line; when a resource is named it is
// "<kind>/<namespace>/<name>" quoted in the line, and the field comes after it.
#include <cstddef>
#include <cstdint>
#include <string>

#include "fuzz_check.h"
#include "xds/error_detail.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const std::string line(reinterpret_cast<const char *>(data), size);
  const auto detail = sockmesh::xds::error_detail(line);
  FUZZ_CHECK(detail.message() == line, line);
  if (!detail.resource().empty()) {
    const std::string &resource = detail.resource();
    const size_t slash = resource.find('/');
    FUZZ_CHECK(slash != std::string::npos && slash > 0, resource);
    const std::string quoted =
        resource.substr(0, slash) + " \"" + resource.substr(slash + 1) + "\": ";
    const size_t at = line.find(quoted);
    FUZZ_CHECK(at != std::string::npos, resource + " not in " + line);
    FUZZ_CHECK(!detail.field().empty() &&
                   line.find(detail.field(), at + quoted.size()) != std::string::npos,
               line);
  } else {
    FUZZ_CHECK(detail.field().empty(), line);
  }
  return 0;
}
