// libFuzzer target for the Xen configuration. The first line of the input is
// tried as an ESP path for xen_file_name, the rest is parsed as a
// configuration. xbb::Error is the expected refusal; any other exception,
// crash or sanitizer report is a bug, and so is a file name that is not the
// path with '/' turned into '\', or a parsed key or value holding a line break.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "xbb/error.hpp"
#include "xbb/xen_config.hpp"

namespace {

void check_file_name(std::string_view esp_path) {
  std::string name;
  try {
    name = xbb::xen_file_name(esp_path);
  } catch (const xbb::Error&) {
    return;
  }
  std::replace(name.begin(), name.end(), '\\', '/');
  if (name != esp_path) __builtin_trap();
}

bool breaks_line(const std::string& text) {
  return text.find_first_of(std::string_view("\n\r\0", 3)) != std::string::npos;
}

void check_config(std::string_view text) {
  xbb::ParsedXenConfig parsed;
  try {
    parsed = xbb::parse_xen_config(text, "fuzz/xen.cfg");
  } catch (const xbb::Error&) {
    return;
  }
  if (parsed.default_section && breaks_line(*parsed.default_section)) __builtin_trap();
  for (const auto& section : parsed.sections) {
    if (section.name.empty() || breaks_line(section.name)) __builtin_trap();
    for (const auto& [key, value] : section.keys) {
      if (key.empty() || breaks_line(key) || breaks_line(value)) __builtin_trap();
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  std::size_t newline = input.find('\n');
  check_file_name(input.substr(0, newline));
  check_config(newline == std::string_view::npos ? std::string_view() : input.substr(newline + 1));
  return 0;
}
