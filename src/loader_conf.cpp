#include "xbb/loader_conf.hpp"

#include "text.hpp"
#include "xbb/error.hpp"

namespace xbb {
namespace {

using text::is_blank;

// One line of loader.conf cut into the bytes before the value, the value and
// the bytes after it (trailing blanks, CR, LF): prefix + value + suffix is
// the line exactly as it was.
struct ConfLine {
  std::string_view prefix;
  std::string_view key;
  std::string_view value;
  std::string_view suffix;
};

ConfLine cut_line(std::string_view line) {
  std::size_t end = line.size();
  if (end > 0 && line[end - 1] == '\n') --end;
  if (end > 0 && line[end - 1] == '\r') --end;
  while (end > 0 && is_blank(line[end - 1])) --end;

  std::size_t key_start = 0;
  while (key_start < end && is_blank(line[key_start])) ++key_start;
  std::size_t key_end = key_start;
  while (key_end < end && !is_blank(line[key_end])) ++key_end;
  std::size_t value_start = key_end;
  while (value_start < end && is_blank(line[value_start])) ++value_start;

  return ConfLine{line.substr(0, value_start), line.substr(key_start, key_end - key_start),
                  line.substr(value_start, end - value_start), line.substr(end)};
}

bool is_comment(const ConfLine& line) { return line.key.starts_with('#'); }

// The lines of `text`, each with its LF (the last one may have none).
std::vector<std::string_view> split_keeping_newlines(std::string_view text) {
  std::vector<std::string_view> lines;
  std::size_t start = 0;
  while (start < text.size()) {
    std::size_t end = text.find('\n', start);
    end = end == std::string_view::npos ? text.size() : end + 1;
    lines.push_back(text.substr(start, end - start));
    start = end;
  }
  return lines;
}

void check_replacement(const std::string& replacement, std::string_view key,
                       std::size_t line_number) {
  std::optional<std::string> problem = text::line_break_problem(replacement);
  if (replacement.empty()) problem = "is empty";
  if (problem) {
    throw Error("loader.conf", "line " + std::to_string(line_number) + ": new " + std::string(key) +
                                   " value " + *problem);
  }
}

}  // namespace

std::string retarget_loader_conf(std::string_view text, const RetargetFn& retarget) {
  std::string out;
  out.reserve(text.size());
  std::size_t line_number = 0;
  for (std::string_view raw : split_keeping_newlines(text)) {
    ++line_number;
    ConfLine line = cut_line(raw);
    bool retargetable = (line.key == "default" || line.key == "preferred") && !line.value.empty();
    std::optional<std::string> replacement = retargetable ? retarget(line.value) : std::nullopt;
    if (!replacement) {
      out.append(raw);
      continue;
    }
    check_replacement(*replacement, line.key, line_number);
    out.append(line.prefix).append(*replacement).append(line.suffix);
  }
  return out;
}

std::optional<std::string> loader_conf_value(std::string_view text, std::string_view key) {
  std::optional<std::string> value;
  for (std::string_view raw : split_keeping_newlines(text)) {
    ConfLine line = cut_line(raw);
    if (!is_comment(line) && line.key == key && !line.value.empty())
      value = std::string(line.value);
  }
  return value;
}

}  // namespace xbb
