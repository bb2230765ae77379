#pragma once

// Text rules shared by the parsers and writers of every file the tool reads or
// writes. Internal to the library. Keeping them in one place is what makes
// `build` and `verify` judge the same text the same way.

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace xbb::text {

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

// Space or tab: what separates words on a line of every format we read.
inline bool is_blank(char c) { return c == ' ' || c == '\t'; }

// `text` without the blanks at either end.
std::string_view trim_blanks(std::string_view text);

// The first word of `text` (up to a blank) and the rest after the blanks that
// follow it; both empty for blank text.
std::pair<std::string_view, std::string_view> split_first_word(std::string_view text);

// What makes a value unfit for one line of a generated file: "contains a
// newline", "contains a carriage return" or "contains a NUL byte"; nullopt
// when nothing does.
std::optional<std::string> line_break_problem(std::string_view text);

// The file name characters of the Boot Loader Specification and of every name
// we write on the ESP: [A-Za-z0-9+_.-].
bool is_file_name_character(char c);

// Printable ASCII (0x20 to 0x7e): all Xen's configuration parser accepts in
// a value.
inline bool is_printable_ascii(char c) { return c >= 0x20 && c <= 0x7e; }

// `text` with every byte outside printable ASCII written as \xNN, so that a
// message quoting it stays one readable line.
std::string printable(std::string_view text);

// Whether `text` is well-formed UTF-8 (no overlong forms, no surrogates,
// nothing past U+10FFFF): what a JSON string may hold.
bool is_utf8(std::string_view text);

// `text` with every byte that is not part of well-formed UTF-8 written as
// \xNN, as printable() writes it; well-formed UTF-8 is kept as it is. The rule
// by which every JSON document the tool writes holds text (json_text).
std::string utf8_escaped(std::string_view text);

// The components of `path` between `separator`s, empty ones included
// ("/a//b" gives "", "a", "", "b").
std::vector<std::string_view> split(std::string_view path, char separator);

}  // namespace xbb::text
