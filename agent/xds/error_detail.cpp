#include "xds/error_detail.h"

#include <regex>

namespace sockmesh::xds {

v1::ErrorDetail error_detail(const std::string &error) {
  static const std::regex shape(R"re(^(?:[^ ]*:[0-9]+: )?([a-z]+) "([^"]+)": ([^:]+): )re");
  v1::ErrorDetail detail;
  detail.set_message(error);
  std::smatch match;
  if (std::regex_search(error, match, shape)) {
    detail.set_resource(match[1].str() + "/" + match[2].str());
    detail.set_field(match[3].str());
  }
  return detail;
}

}  // namespace sockmesh::xds
