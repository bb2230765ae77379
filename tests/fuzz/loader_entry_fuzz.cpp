// libFuzzer target for loader entries. The first line of the input is tried
// as an entry file name, the rest as entry text. xbb::Error is the expected
// refusal of bad text; any other exception, crash or sanitizer report is a
// bug, and so is a file name that does not print back as read, or an entry
// that does not read back as rendered.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "xbb/error.hpp"
#include "xbb/loader_entry.hpp"

namespace {

void check_name_round_trip(std::string_view filename) {
  auto name = xbb::parse_entry_name(filename);
  if (name && name->filename() != filename) __builtin_trap();
}

void check_entry_round_trip(const xbb::LoaderEntry& entry) {
  xbb::LoaderEntry read = xbb::parse_loader_entry(xbb::render_loader_entry(entry), "fuzz/rendered.conf");
  if (read.title != entry.title || read.version != entry.version || read.efi != entry.efi ||
      read.options != entry.options || read.machine_id != entry.machine_id ||
      read.sort_key != entry.sort_key) {
    __builtin_trap();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  std::size_t newline = input.find('\n');
  check_name_round_trip(input.substr(0, newline));
  std::string_view text = newline == std::string_view::npos ? std::string_view() : input.substr(newline + 1);
  xbb::LoaderEntry entry;
  try {
    entry = xbb::parse_loader_entry(text, "fuzz/entry.conf");
  } catch (const xbb::Error&) {
    return 0;
  }
  check_entry_round_trip(entry);
  return 0;
}
