#include "text.hpp"

#include <cstdio>

namespace xbb::text {

std::string_view trim_blanks(std::string_view text) {
  while (!text.empty() && is_blank(text.front())) text.remove_prefix(1);
  while (!text.empty() && is_blank(text.back())) text.remove_suffix(1);
  return text;
}

std::pair<std::string_view, std::string_view> split_first_word(std::string_view text) {
  text = trim_blanks(text);
  std::size_t end = 0;
  while (end < text.size() && !is_blank(text[end])) ++end;
  return {text.substr(0, end), trim_blanks(text.substr(end))};
}

std::optional<std::string> line_break_problem(std::string_view text) {
  if (text.find('\n') != std::string_view::npos) return "contains a newline";
  if (text.find('\r') != std::string_view::npos) return "contains a carriage return";
  if (text.find('\0') != std::string_view::npos) return "contains a NUL byte";
  return std::nullopt;
}

bool is_file_name_character(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
         c == '_' || c == '.' || c == '-';
}

std::string printable(std::string_view text) {
  std::string out;
  for (char c : text) {
    if (is_printable_ascii(c)) {
      out += c;
    } else {
      char escaped[5];
      std::snprintf(escaped, sizeof escaped, "\\x%02x", static_cast<unsigned char>(c));
      out += escaped;
    }
  }
  return out;
}

std::vector<std::string_view> split(std::string_view path, char separator) {
  std::vector<std::string_view> parts;
  std::size_t start = 0;
  for (;;) {
    std::size_t end = path.find(separator, start);
    if (end == std::string_view::npos) {
      parts.push_back(path.substr(start));
      return parts;
    }
    parts.push_back(path.substr(start, end - start));
    start = end + 1;
  }
}

}  // namespace xbb::text
