#include "xbb/xen_config.hpp"

#include <cstdio>

#include "text_lines.hpp"
#include "xbb/error.hpp"

namespace xbb {
namespace {

constexpr const char* kWhere = "Xen configuration";
constexpr std::string_view kGlobal = "global";

bool is_blank(char c) { return c == ' ' || c == '\t'; }

bool is_section_character(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '.' || c == '-';
}

bool is_printable_ascii(char c) { return c >= 0x20 && c <= 0x7e; }

// `text` with every byte outside printable ASCII written as \xNN, so that an
// error message quoting it stays on one line.
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

void check_value(std::string_view value, const std::string& field) {
  const char* problem = nullptr;
  if (value.find('\n') != std::string_view::npos) problem = "contains a newline";
  else if (value.find('\r') != std::string_view::npos) problem = "contains a carriage return";
  else if (value.find('\0') != std::string_view::npos) problem = "contains a NUL byte";
  if (problem) throw Error(kWhere, field + ": " + problem);
}

void check_file(std::string_view file, const std::string& field) {
  if (file.empty()) throw Error(kWhere, field + ": is empty");
  check_value(file, field);
}

void check_section_name(std::string_view name) {
  if (name.empty()) throw Error(kWhere, "section: is empty");
  for (char c : name) {
    if (!is_section_character(c)) {
      throw Error(kWhere, "section: '" + printable(name) + "' has a character outside [A-Za-z0-9_.-]");
    }
  }
}

std::string_view trim_blanks(std::string_view text) {
  while (!text.empty() && is_blank(text.front())) text.remove_prefix(1);
  while (!text.empty() && is_blank(text.back())) text.remove_suffix(1);
  return text;
}

// Reads the lines of a configuration into `parsed`.
class ConfigReader {
 public:
  ConfigReader(const std::string& origin, ParsedXenConfig& parsed) : origin_(origin), parsed_(parsed) {}

  void read_line(std::size_t number, std::string_view line) {
    number_ = number;
    check_bytes(line);
    line = trim_blanks(line);
    if (line.empty() || line.front() == '#') return;
    if (line.front() == '[') {
      start_section(line);
    } else {
      add_key(line);
    }
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw Error(origin_, "line " + std::to_string(number_) + ": " + what);
  }

  void check_bytes(std::string_view line) const {
    for (char c : line) {
      if (c == '\0') fail("contains a NUL byte");
      if (c == '\r') fail("contains a carriage return inside the line");
      if (static_cast<unsigned char>(c) > 0x7f) fail("contains a byte outside ASCII");
    }
  }

  void start_section(std::string_view line) {
    if (line.back() != ']') fail("section header without ']'");
    std::string_view name = trim_blanks(line.substr(1, line.size() - 2));
    if (name.empty()) fail("empty section name");
    in_global_ = name == kGlobal;
    if (!in_global_) parsed_.sections.push_back({std::string(name), {}});
    in_section_ = true;
  }

  void add_key(std::string_view line) {
    std::size_t equals = line.find('=');
    if (equals == std::string_view::npos) fail("neither a section header nor key=value");
    std::string key(trim_blanks(line.substr(0, equals)));
    if (key.empty()) fail("empty key");
    if (!in_section_) fail("key '" + printable(key) + "' outside any section");
    std::string value(line.substr(equals + 1));
    if (!in_global_) {
      parsed_.sections.back().keys.emplace_back(std::move(key), std::move(value));
    } else if (key == "default") {
      parsed_.default_section = std::move(value);
    }
  }

  const std::string& origin_;
  ParsedXenConfig& parsed_;
  std::size_t number_ = 0;
  bool in_section_ = false;
  bool in_global_ = false;
};

}  // namespace

std::string render_xen_config(const XenConfig& config) {
  check_section_name(config.section);
  std::string out = "[global]\ndefault=" + config.section + "\n\n[" + config.section + "]\n";
  if (!config.xen_params.empty()) {
    out += "options=";
    for (std::size_t i = 0; i < config.xen_params.size(); ++i) {
      check_value(config.xen_params[i], "options[" + std::to_string(i) + "]");
      if (i > 0) out += ' ';
      out += config.xen_params[i];
    }
    out += '\n';
  }
  check_file(config.kernel, "kernel");
  out += "kernel=" + config.kernel;
  for (std::size_t i = 0; i < config.kernel_params.size(); ++i) {
    check_value(config.kernel_params[i], "kernel params[" + std::to_string(i) + "]");
    out += ' ' + config.kernel_params[i];
  }
  out += '\n';
  if (config.ramdisk) {
    check_file(*config.ramdisk, "ramdisk");
    out += "ramdisk=" + *config.ramdisk + "\n";
  }
  return out;
}

std::string ParsedXenConfig::default_value(const std::string& key) const {
  for (const auto& section : sections) {
    if (section.name != default_section) continue;
    for (const auto& [k, v] : section.keys) {
      if (k == key) return v;
    }
  }
  return {};
}

ParsedXenConfig parse_xen_config(std::string_view text, const std::string& origin) {
  ParsedXenConfig parsed;
  ConfigReader reader(origin, parsed);
  for_each_line(text, [&reader](std::size_t number, std::string_view line) { reader.read_line(number, line); });
  return parsed;
}

std::string xen_file_name(std::string_view esp_path) {
  std::string where = "ESP path '" + printable(esp_path) + "'";
  if (!esp_path.starts_with('/')) throw Error(where, "is not absolute");
  std::string name;
  std::size_t start = 1;
  while (true) {
    std::size_t end = esp_path.find('/', start);
    std::string_view component = esp_path.substr(start, end == std::string_view::npos ? end : end - start);
    if (component.empty()) throw Error(where, "has an empty component");
    if (component == "." || component == "..") throw Error(where, "has a '.' or '..' component");
    for (char c : component) {
      if (c == '\\') throw Error(where, "contains a backslash");
      if (!is_printable_ascii(c)) throw Error(where, "contains a character outside printable ASCII");
    }
    name += '\\';
    name += component;
    if (end == std::string_view::npos) return name;
    start = end + 1;
  }
}

}  // namespace xbb
