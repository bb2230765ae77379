#include "json_input.hpp"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <utility>
#include <vector>

#include "xbb/error.hpp"

namespace xbb {
namespace {

bool is_number_character(char c) {
  return (c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E';
}

bool overflows_double(std::string_view token) {
  const std::string copy(token);
  errno = 0;
  const double value = std::strtod(copy.c_str(), nullptr);
  return errno == ERANGE && std::isinf(value);
}

// The end of the string literal whose opening quote is at `start`, or the
// end of the text when it is not terminated (the parser reports that).
std::size_t string_end(std::string_view text, std::size_t start) {
  for (std::size_t i = start + 1; i < text.size(); ++i) {
    if (text[i] == '\\') {
      ++i;
    } else if (text[i] == '"') {
      return i;
    }
  }
  return text.size();
}

// Checks the nesting depth and finds the numbers a double cannot hold, in one
// pass over the text outside string literals.
std::vector<std::pair<std::size_t, std::size_t>> scan(std::string_view text,
                                                      const std::string& origin,
                                                      std::size_t max_depth) {
  std::vector<std::pair<std::size_t, std::size_t>> huge_numbers;
  std::size_t depth = 0;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '"') {
      i = string_end(text, i);
    } else if (c == '[' || c == '{') {
      if (++depth > max_depth) {
        throw Error(origin, "JSON nested more than " + std::to_string(max_depth) +
                                " levels deep (at byte " + std::to_string(i) + ")");
      }
    } else if (c == ']' || c == '}') {
      if (depth > 0) --depth;
    } else if (is_number_character(c)) {
      std::size_t end = i;
      while (end < text.size() && is_number_character(text[end])) ++end;
      if (overflows_double(text.substr(i, end - i))) huge_numbers.emplace_back(i, end);
      i = end - 1;
    }
  }
  return huge_numbers;
}

}  // namespace

template <typename Json>
Json parse_json(std::string_view text, const std::string& origin, std::size_t max_bytes,
                std::size_t max_depth) {
  if (text.size() > max_bytes) {
    throw Error(origin, std::to_string(text.size()) + " bytes, more than the " +
                            std::to_string(max_bytes) + " this document may have");
  }
  const auto huge_numbers = scan(text, origin, max_depth);
  std::string patched;
  if (!huge_numbers.empty()) {
    std::size_t copied = 0;
    for (const auto& [start, end] : huge_numbers) {
      patched.append(text.substr(copied, start - copied)).append("null");
      copied = end;
    }
    patched.append(text.substr(copied));
    text = patched;
  }
  try {
    return Json::parse(text);
  } catch (const typename Json::exception& error) {
    throw Error(origin, std::string("invalid JSON: ") + error.what());
  }
}

template nlohmann::ordered_json parse_json(std::string_view, const std::string&, std::size_t,
                                           std::size_t);
template nlohmann::json parse_json(std::string_view, const std::string&, std::size_t, std::size_t);

}  // namespace xbb
