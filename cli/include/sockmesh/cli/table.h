// Plain-text tables: the default output format of every list meshctl prints.
#pragma once

#include <ostream>
#include <string>
#include <string_view>
#include <vector>

namespace sockmesh::cli {

// Left-aligned columns separated by three spaces, a header row in capitals, no trailing spaces.
class Table {
 public:
  explicit Table(std::vector<std::string> headers);

  // cells.size() must equal the number of headers.
  void add_row(std::vector<std::string> cells);

  bool empty() const { return rows_.empty(); }
  std::size_t size() const { return rows_.size(); }

  // Writes the header and every row, each ending in '\n'.
  void render(std::ostream &out) const;

 private:
  std::vector<std::string> headers_;
  std::vector<std::vector<std::string>> rows_;
};

// A titled block of a describe/status view: an empty line, "<title>:", then the table, or the
// `none` line when it has no rows.
void render_section(std::ostream &out, std::string_view title, const Table &table,
                    std::string_view none);

}  // namespace sockmesh::cli
