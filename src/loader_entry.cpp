#include "xbb/loader_entry.hpp"

#include <charconv>
#include <climits>

#include "text.hpp"
#include "xbb/error.hpp"
#include "xbb/layout.hpp"

namespace xbb {
namespace {

constexpr std::string_view kSuffix = ".conf";
constexpr std::size_t kMaxFileNameLength = 255;

bool is_key_character(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '-';
}

// A number of a boot counter: one or more digits that fit an unsigned.
std::optional<unsigned> parse_count(std::string_view digits) {
  if (digits.empty()) return std::nullopt;
  for (char c : digits) {
    if (c < '0' || c > '9') return std::nullopt;
  }
  unsigned value = 0;
  auto [end, error] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
  if (error != std::errc() || end != digits.data() + digits.size()) return std::nullopt;
  return value;
}

// The counter written after the last '+' ("3" or "3-1"), or nullopt.
std::optional<BootCounter> parse_counter(std::string_view text) {
  std::size_t dash = text.find('-');
  BootCounter counter;
  auto left = parse_count(text.substr(0, dash));
  if (!left) return std::nullopt;
  counter.left = *left;
  counter.left_width = static_cast<unsigned>(text.substr(0, dash).size());
  if (dash != std::string_view::npos) {
    auto done = parse_count(text.substr(dash + 1));
    if (!done) return std::nullopt;
    counter.done = *done;
    counter.done_width = static_cast<unsigned>(text.size() - dash - 1);
  }
  return counter;
}

std::string padded(unsigned value, unsigned width) {
  std::string digits = std::to_string(value);
  if (digits.size() < width) digits.insert(0, width - digits.size(), '0');
  return digits;
}

// A line of an entry, numbered from 1 (see for_each_line), checked for NUL and stray CR.
struct Line {
  std::size_t number;
  std::string_view text;
};

std::vector<Line> split_lines(std::string_view text, const std::string& origin) {
  std::vector<Line> lines;
  text::for_each_line(text, [&](std::size_t number, std::string_view line) {
    std::string where = "line " + std::to_string(number);
    if (line.find('\0') != std::string_view::npos)
      throw Error(origin, where + ": contains a NUL byte");
    if (line.find('\r') != std::string_view::npos) {
      throw Error(origin, where + ": contains a carriage return inside the line");
    }
    lines.push_back({number, line});
  });
  return lines;
}

using EntryField = std::optional<std::string> LoaderEntry::*;

// The keys that hold one value (a later line replaces an earlier one).
std::optional<EntryField> single_value_field(std::string_view key) {
  static constexpr std::pair<std::string_view, EntryField> kFields[] = {
      {"title", &LoaderEntry::title},
      {"version", &LoaderEntry::version},
      {"machine-id", &LoaderEntry::machine_id},
      {"sort-key", &LoaderEntry::sort_key},
      {"linux", &LoaderEntry::kernel},
      {"devicetree", &LoaderEntry::devicetree},
      {"efi", &LoaderEntry::efi},
  };
  for (const auto& [name, field] : kFields) {
    if (name == key) return field;
  }
  return std::nullopt;
}

void set_value(LoaderEntry& entry, std::string_view key, std::string_view value) {
  std::string text(value);
  if (auto field = single_value_field(key)) {
    entry.** field = std::move(text);
  } else if (key == "initrd") {
    entry.initrds.push_back(std::move(text));
  } else if (key == "options") {
    if (entry.options) {
      entry.options->append(1, ' ').append(text);
    } else {
      entry.options = std::move(text);
    }
  }
}

void render_line(std::string& out, std::string_view key, const std::optional<std::string>& value) {
  if (!value || value->empty()) return;
  if (auto problem = text::line_break_problem(*value)) {
    throw Error("loader entry", std::string(key) + ": " + *problem);
  }
  out.append(key).append(" ").append(*value).append("\n");
}

}  // namespace

unsigned BootCounter::total() const {
  const unsigned extra = done.value_or(0);
  return left > UINT_MAX - extra ? UINT_MAX : left + extra;
}

std::string EntryName::filename() const {
  std::string name = stem;
  if (counter) {
    name.append("+").append(padded(counter->left, counter->left_width));
    if (counter->done) name.append("-").append(padded(*counter->done, counter->done_width));
  }
  return name + std::string(kSuffix);
}

std::optional<EntryName> parse_entry_name(std::string_view filename) {
  if (filename.size() > kMaxFileNameLength || !filename.ends_with(kSuffix)) return std::nullopt;
  for (char c : filename) {
    if (!text::is_file_name_character(c)) return std::nullopt;
  }
  std::string_view base = filename.substr(0, filename.size() - kSuffix.size());
  EntryName name;
  std::size_t plus = base.rfind('+');
  if (plus != std::string_view::npos) name.counter = parse_counter(base.substr(plus + 1));
  name.stem = std::string(name.counter ? base.substr(0, plus) : base);
  if (name.stem.empty()) return std::nullopt;
  return name;
}

LoaderEntry parse_loader_entry(std::string_view text, const std::string& origin) {
  LoaderEntry entry;
  for (const Line& line : split_lines(text, origin)) {
    auto [key, value] = text::split_first_word(line.text);
    if (key.empty() || key.front() == '#') continue;
    for (char c : key) {
      if (!is_key_character(c)) {
        throw Error(origin, "line " + std::to_string(line.number) + ": does not start with a key");
      }
    }
    if (!value.empty()) set_value(entry, key, value);
  }
  return entry;
}

std::string render_loader_entry(const LoaderEntry& entry) {
  std::string out = std::string(layout::kMarker) + "\n";
  render_line(out, "title", entry.title);
  render_line(out, "version", entry.version);
  render_line(out, "efi", entry.efi);
  render_line(out, "options", entry.options);
  render_line(out, "machine-id", entry.machine_id);
  render_line(out, "sort-key", entry.sort_key);
  out.shrink_to_fit();  // a plan keeps a thousand of these
  return out;
}

}  // namespace xbb
