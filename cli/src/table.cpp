#include "sockmesh/cli/table.h"

#include <algorithm>
#include <cassert>
#include <utility>

namespace sockmesh::cli {
namespace {

// Columns line up on screen, so widths count UTF-8 code points, not bytes.
std::size_t display_width(const std::string &text) {
  return static_cast<std::size_t>(std::count_if(text.begin(), text.end(), [](char c) {
    return (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  }));
}

void render_row(std::ostream &out, const std::vector<std::string> &cells,
                const std::vector<std::size_t> &widths) {
  constexpr std::string_view kGap = "   ";
  std::string line;
  for (std::size_t i = 0; i < cells.size(); ++i) {
    line += cells[i];
    if (i + 1 < cells.size())
      line += std::string(widths[i] - display_width(cells[i]), ' ') + std::string(kGap);
  }
  // Empty trailing cells must not leave padding behind.
  line.erase(line.find_last_not_of(' ') + 1);
  out << line << '\n';
}

}  // namespace

Table::Table(std::vector<std::string> headers) : headers_(std::move(headers)) {}

void Table::add_row(std::vector<std::string> cells) {
  assert(cells.size() == headers_.size());
  cells.resize(headers_.size());
  rows_.push_back(std::move(cells));
}

void Table::render(std::ostream &out) const {
  std::vector<std::size_t> widths(headers_.size());
  for (std::size_t i = 0; i < headers_.size(); ++i) widths[i] = display_width(headers_[i]);
  for (const auto &row : rows_) {
    for (std::size_t i = 0; i < row.size(); ++i)
      widths[i] = std::max(widths[i], display_width(row[i]));
  }
  render_row(out, headers_, widths);
  for (const auto &row : rows_) render_row(out, row, widths);
}

void render_section(std::ostream &out, std::string_view title, const Table &table,
                    std::string_view none) {
  out << '\n' << title << ":\n";
  if (table.empty()) {
    out << none << '\n';
    return;
  }
  table.render(out);
}

}  // namespace sockmesh::cli
