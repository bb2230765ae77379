#pragma once

// Line splitting shared by the parsers of text files. Internal to the library.

#include <cstddef>
#include <string_view>

namespace xbb {

// Calls `each(number, line)` for every line of `text`: split at LF, a CR just
// before the LF dropped, `number` counting from 1. A last line without a
// final LF counts as a line.
template <typename Each>
void for_each_line(std::string_view text, Each each) {
  std::size_t start = 0;
  std::size_t number = 1;
  while (start < text.size()) {
    std::size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(start, end - start);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    each(number, line);
    start = end + 1;
    ++number;
  }
}

}  // namespace xbb
