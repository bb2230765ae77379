#include "xbb/boot_menu.hpp"

#include <fnmatch.h>

#include <algorithm>
#include <cctype>

namespace xbb {
namespace {

bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool is_version_character(char c) {
  return is_digit(c) || is_alpha(c) || c == '~' || c == '-' || c == '^' || c == '.';
}

int sign(int value) { return (value > 0) - (value < 0); }

// The length of the run of characters at the front of `text` that satisfy `in_run`.
template <typename Predicate>
std::size_t run_length(std::string_view text, Predicate in_run) {
  std::size_t length = 0;
  while (length < text.size() && in_run(text[length])) ++length;
  return length;
}

// Compares one of the characters that may start a segment ('~', '-', '^',
// '.'): a string whose next segment starts with it, when the other's does
// not, is the older one. Consumes the character when both have it. Checked in
// that order, this ranks a segment after '~' below the end of a string, then
// '-' (a release) below '^' (a patch) below '.' below a plain segment.
int compare_prefix(std::string_view& a, std::string_view& b, char prefix) {
  const bool in_a = !a.empty() && a.front() == prefix;
  const bool in_b = !b.empty() && b.front() == prefix;
  if (!in_a && !in_b) return 0;
  if (in_a != in_b) return in_a ? -1 : 1;
  a.remove_prefix(1);
  b.remove_prefix(1);
  return 0;
}

int compare_optional(const std::optional<std::string>& a, const std::optional<std::string>& b) {
  if (!a || !b) return static_cast<int>(a.has_value()) - static_cast<int>(b.has_value());
  return sign(a->compare(*b));
}

std::string lower(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

int compare_entries(const MenuEntry& a, const MenuEntry& b) {
  const bool a_bad = a.counter && a.counter->left == 0;
  const bool b_bad = b.counter && b.counter->left == 0;
  if (a_bad != b_bad) return a_bad ? 1 : -1;
  if (a.sort_key.has_value() != b.sort_key.has_value()) return a.sort_key ? -1 : 1;
  if (a.sort_key) {
    if (int r = compare_optional(a.sort_key, b.sort_key)) return r;
    if (int r = compare_optional(a.machine_id, b.machine_id)) return r;
    if (int r = compare_versions(a.version.value_or(""), b.version.value_or(""))) return -r;
  }
  if (int r = compare_versions(lower(a.file_name), lower(b.file_name))) return -r;
  if (!a.counter || !b.counter) return 0;
  if (a.counter->left != b.counter->left) return a.counter->left > b.counter->left ? -1 : 1;
  const unsigned a_done = a.counter->done.value_or(0), b_done = b.counter->done.value_or(0);
  return a_done == b_done ? 0 : (a_done < b_done ? -1 : 1);
}

}  // namespace

int compare_versions(std::string_view a, std::string_view b) {
  for (;;) {
    a.remove_prefix(run_length(a, [](char c) { return !is_version_character(c); }));
    b.remove_prefix(run_length(b, [](char c) { return !is_version_character(c); }));
    // A segment marked '~' (a pre-release) is older than anything else,
    // even than the end of the other string.
    if (int r = compare_prefix(a, b, '~')) return r;
    if (a.empty() || b.empty()) return static_cast<int>(!a.empty()) - static_cast<int>(!b.empty());
    for (char prefix : {'-', '^', '.'}) {
      if (int r = compare_prefix(a, b, prefix)) return r;
    }
    if ((!a.empty() && is_digit(a.front())) || (!b.empty() && is_digit(b.front()))) {
      std::size_t a_length = run_length(a, is_digit);
      std::size_t b_length = run_length(b, is_digit);
      if ((a_length == 0) != (b_length == 0)) return a_length == 0 ? -1 : 1;
      std::string_view a_number = a.substr(0, a_length), b_number = b.substr(0, b_length);
      a_number.remove_prefix(run_length(a_number, [](char c) { return c == '0'; }));
      b_number.remove_prefix(run_length(b_number, [](char c) { return c == '0'; }));
      if (a_number.size() != b_number.size()) return a_number.size() < b_number.size() ? -1 : 1;
      if (int r = sign(a_number.compare(b_number))) return r;
      a.remove_prefix(a_length);
      b.remove_prefix(b_length);
    } else {
      std::size_t a_length = run_length(a, is_alpha);
      std::size_t b_length = run_length(b, is_alpha);
      std::size_t common = std::min(a_length, b_length);
      if (int r = sign(a.substr(0, common).compare(b.substr(0, common)))) return r;
      if (a_length != b_length) return a_length < b_length ? -1 : 1;
      a.remove_prefix(a_length);
      b.remove_prefix(b_length);
    }
  }
}

MenuEntry menu_entry(const EntryName& name, const LoaderEntry& entry) {
  return {name.filename(), name.counter, entry.sort_key, entry.machine_id, entry.version};
}

bool boots_before(const MenuEntry& a, const MenuEntry& b) { return compare_entries(a, b) < 0; }

bool selects(std::string_view pattern, const MenuEntry& entry) {
  const std::string folded = lower(pattern);
  auto matches = [&folded](const std::string& name) {
    return fnmatch(folded.c_str(), lower(name).c_str(), 0) == 0;
  };
  if (matches(entry.file_name)) return true;
  auto name = parse_entry_name(entry.file_name);
  return name && name->counter && matches(name->stem + ".conf");
}

std::optional<std::size_t> pick(std::string_view pattern, const std::vector<MenuEntry>& entries) {
  std::optional<std::size_t> best;
  for (std::size_t i = 0; i < entries.size(); ++i) {
    if (!selects(pattern, entries[i])) continue;
    if (!best || boots_before(entries[i], entries[*best])) best = i;
  }
  return best;
}

std::optional<std::size_t> first_in_menu(const std::vector<MenuEntry>& entries) {
  return pick("*", entries);
}

}  // namespace xbb
