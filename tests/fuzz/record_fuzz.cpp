// libFuzzer target for the record's reader and writer. The whole input is
// read as a record; parse_record refuses anything it cannot vouch for with
// nullopt, so any exception, crash or sanitizer report is a bug, and so is:
// - a record it reads that does not read back equal from its own text, or
//   whose text is not a fixed point of reading and writing;
// - the input's lines, as the paths, digests and configuration of a record
//   (any bytes, UTF-8 or not), making a text that is not a record, or one
//   that does not read back to the same text.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "xbb/record.hpp"

namespace {

void check(bool condition) {
  if (!condition) __builtin_trap();
}

void check_round_trip(const xbb::Record& record) {
  const std::string text = xbb::render_record(record);
  const std::optional<xbb::Record> read = xbb::parse_record(text);
  check(read.has_value());
  check(xbb::render_record(*read) == text);
}

std::vector<std::string> lines_of(std::string_view input) {
  std::vector<std::string> lines;
  std::size_t start = 0;
  while (start <= input.size() && lines.size() < 7) {
    const std::size_t end = std::min(input.find('\n', start), input.size());
    lines.emplace_back(input.substr(start, end - start));
    start = end + 1;
  }
  lines.resize(7);
  return lines;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  if (const std::optional<xbb::Record> record = xbb::parse_record(input)) {
    check(xbb::parse_record(xbb::render_record(*record)) == record);
    check_round_trip(*record);
  }
  const std::vector<std::string> lines = lines_of(input);
  xbb::Record written;
  written.images[lines[0]] = {
      {size, static_cast<std::int64_t>(size) - 7}, lines[1], lines[2], lines[3], lines[6]};
  written.sources[lines[4]] = {{0, -1}, size % 2 == 0, lines[5], size % 3 == 0};
  check_round_trip(written);
  return 0;
}
