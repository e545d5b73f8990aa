#include "xds/error_detail.h"

#include <optional>
#include <string_view>

namespace sockmesh::xds {
namespace {

// The shape read below, once a regular expression:
//   ^(?:[^ ]*:[0-9]+: )?([a-z]+) "([^"]+)": ([^:]+):<space>
// libstdc++'s std::regex matches by recursion, a frame per character: a line of some 50 KB (a
// long value quoted in the message) overflowed the stack (found by test/fuzz/error_detail_fuzz).
// Matched by hand, in the same order: with the location prefix first, then without it.
struct Parts {
  std::string_view kind, name, field;
};

// `<kind> "<name>": <field>: ` starting at `at`.
std::optional<Parts> parts_at(std::string_view line, size_t at) {
  size_t p = at;
  while (p < line.size() && line[p] >= 'a' && line[p] <= 'z') ++p;
  if (p == at || line.substr(p, 2) != " \"") return std::nullopt;
  const size_t name = p + 2;
  const size_t quote = line.find('"', name);
  if (quote == std::string_view::npos || quote == name || line.substr(quote, 3) != "\": ")
    return std::nullopt;
  const size_t field = quote + 3;
  const size_t colon = line.find(':', field);
  if (colon == std::string_view::npos || colon == field || line.substr(colon, 2) != ": ")
    return std::nullopt;
  return Parts{line.substr(at, p - at), line.substr(name, quote - name),
               line.substr(field, colon - field)};
}

// Where the text after a `<file>:<line>: ` prefix starts (the first word ends in ":<digits>:"),
// or 0 when there is none.
size_t after_location(std::string_view line) {
  const size_t space = line.find(' ');
  if (space == std::string_view::npos) return 0;
  std::string_view word = line.substr(0, space);
  if (!word.ends_with(':')) return 0;
  word.remove_suffix(1);
  const size_t last = word.find_last_not_of("0123456789");
  if (last == std::string_view::npos || last + 1 == word.size() || word[last] != ':') return 0;
  return space + 1;
}

}  // namespace

v1::ErrorDetail error_detail(const std::string &error) {
  v1::ErrorDetail detail;
  detail.set_message(error);
  const size_t start = after_location(error);
  std::optional<Parts> parts = parts_at(error, start);
  if (!parts && start != 0) parts = parts_at(error, 0);
  if (parts) {
    detail.set_resource(std::string(parts->kind) + "/" + std::string(parts->name));
    detail.set_field(std::string(parts->field));
  }
  return detail;
}

}  // namespace sockmesh::xds
