#include "xbb/xen_config.hpp"

#include "text.hpp"
#include "xbb/error.hpp"
#include "xbb/layout.hpp"

namespace xbb {
namespace {

constexpr const char* kWhere = "Xen configuration";
constexpr std::string_view kGlobal = "global";

bool is_section_character(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '.' || c == '-';
}

bool is_control(char c) { return (c >= 0 && c < 0x20) || c == 0x7f; }

// What makes a value read back differently by Xen, or nullopt.
std::optional<std::string> value_problem(std::string_view value) {
  for (char c : value) {
    if (static_cast<unsigned char>(c) > 0x7f) return "contains a byte outside ASCII";
    if (is_control(c)) {
      if (auto problem = text::line_break_problem(value)) return problem;
      return "contains the control character " + text::printable(std::string_view(&c, 1)) +
             ", at which Xen ends the line";
    }
    if (c == '#') return "contains '#', where Xen would start a comment";
  }
  return std::nullopt;
}

void check_value(std::string_view value, const std::string& field) {
  if (auto problem = value_problem(value)) throw Error(kWhere, field + ": " + *problem);
}

void check_file(std::string_view file, const std::string& field) {
  if (file.empty()) throw Error(kWhere, field + ": is empty");
  check_value(file, field);
  if (file.find_first_of(" \t") != std::string_view::npos) {
    throw Error(kWhere, field + ": '" + std::string(file) +
                            "' contains a blank, where Xen would end the file name");
  }
}

void check_section_name(std::string_view name) {
  if (name.empty()) throw Error(kWhere, "section: is empty");
  for (char c : name) {
    if (!is_section_character(c)) {
      throw Error(kWhere, "section: '" + text::printable(name) +
                              "' has a character outside [A-Za-z0-9_.-]");
    }
  }
}

// Reads the lines of a configuration into `parsed`.
class ConfigReader {
 public:
  ConfigReader(const std::string& origin, ParsedXenConfig& parsed)
      : origin_(origin), parsed_(parsed) {}

  void read_line(std::size_t number, std::string_view line) {
    number_ = number;
    line = text::trim_blanks(line);
    check_bytes(line);
    line = text::trim_blanks(line.substr(0, line.find('#')));
    if (line.empty() || line.front() == ';') return;
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
      if (is_control(c)) {
        fail("contains the control character " + text::printable(std::string_view(&c, 1)) +
             ", at which Xen ends the line");
      }
      if (static_cast<unsigned char>(c) > 0x7f) fail("contains a byte outside ASCII");
    }
  }

  void start_section(std::string_view line) {
    std::size_t close = line.find(']');
    if (close == std::string_view::npos) fail("section header without ']'");
    if (close + 1 != line.size()) fail("text after the section header's ']'");
    std::string_view name = line.substr(1, close - 1);
    if (name.empty()) fail("empty section name");
    in_global_ = name == kGlobal;
    if (!in_global_) parsed_.sections.push_back({std::string(name), {}});
    in_section_ = true;
  }

  void add_key(std::string_view line) {
    std::size_t equals = line.find('=');
    if (equals == std::string_view::npos) fail("neither a section header nor key=value");
    std::string key(line.substr(0, equals));
    if (key.empty()) fail("empty key");
    if (text::is_blank(key.back()))
      fail("key '" + key + "' ends in a blank; Xen would not find it");
    if (!in_section_) fail("key '" + text::printable(key) + "' outside any section");
    std::string value(text::trim_blanks(line.substr(equals + 1)));
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

// The file a key names: its first word (kernel= carries dom0's command line after it).
std::string first_word(const std::string& value) {
  return std::string(text::split_first_word(value).first);
}

void check_boot_file(const std::string& what, const std::optional<std::string>& value,
                     bool embedded, const BootFiles& files, std::vector<std::string>& problems) {
  if (!value || embedded) return;
  const std::string name = first_word(*value);
  if (name.empty()) {
    problems.push_back(what + "= names no file");
    return;
  }
  const std::string folder = files.image_path.substr(0, files.image_path.rfind('/') + 1);
  try {
    const std::string path = esp_path_of_xen_file(name, folder);
    if (!files.is_file(path))
      problems.push_back(what + " " + name + " is not on the ESP (" + path + ")");
  } catch (const Error& e) {
    problems.push_back(what + ": " + e.what());
  }
}

}  // namespace

std::string render_xen_config(const XenConfig& config) {
  check_section_name(config.section);
  std::string out = std::string(layout::kMarker) + "\n[global]\ndefault=" + config.section +
                    "\n\n[" + config.section + "]\n";
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
  out.shrink_to_fit();  // a plan keeps a thousand of these
  return out;
}

std::optional<std::string> ParsedXenConfig::default_value(const std::string& key) const {
  for (const auto& section : sections) {
    if (section.name != default_section) continue;
    for (const auto& [k, v] : section.keys) {
      if (k == key) return v;
    }
    return std::nullopt;
  }
  return std::nullopt;
}

ParsedXenConfig parse_xen_config(std::string_view text, const std::string& origin) {
  ParsedXenConfig parsed;
  ConfigReader reader(origin, parsed);
  text::for_each_line(text, [&reader](std::size_t number, std::string_view line) {
    reader.read_line(number, line);
  });
  return parsed;
}

std::string xen_file_name(std::string_view esp_path) {
  std::string where = "ESP path '" + text::printable(esp_path) + "'";
  if (!esp_path.starts_with('/')) throw Error(where, "is not absolute");
  std::string name;
  for (std::string_view component : text::split(esp_path.substr(1), '/')) {
    if (component.empty()) throw Error(where, "has an empty component");
    if (component == "." || component == "..") throw Error(where, "has a '.' or '..' component");
    for (char c : component) {
      if (c == '\\') throw Error(where, "contains a backslash");
      if (!text::is_printable_ascii(c))
        throw Error(where, "contains a character outside printable ASCII");
      if (c == ' ') throw Error(where, "contains a blank, where Xen would end the file name");
      if (c == '#') throw Error(where, "contains '#', where Xen would start a comment");
    }
    name += '\\';
    name += component;
  }
  return name;
}

std::string esp_path_of_xen_file(const std::string& name, const std::string& image_folder) {
  std::vector<std::string> parts;
  if (name.empty() || name.front() != '\\') {
    for (std::string_view part : text::split(image_folder, '/')) {
      if (!part.empty()) parts.emplace_back(part);
    }
  }
  for (std::string_view part : text::split(name, '\\')) {
    if (part.empty() || part == ".") continue;
    if (part == "..") {
      if (parts.empty()) throw Error(name, "leaves the ESP");
      parts.pop_back();
      continue;
    }
    parts.emplace_back(part);
  }
  if (parts.empty()) throw Error(name, "names no file");
  std::string path;
  for (const auto& part : parts) path += (path.empty() ? "" : "/") + part;
  return path;
}

std::vector<std::string> boot_problems(const ParsedXenConfig& config, const BootFiles& files) {
  if (!config.default_section) return {"the configuration has no [global] default="};
  bool found = false;
  for (const auto& section : config.sections)
    found = found || section.name == *config.default_section;
  if (!found) {
    return {"[global] default=" + *config.default_section +
            " names no section of the configuration"};
  }
  std::vector<std::string> problems;
  const auto kernel = config.default_value("kernel");
  if (!kernel || first_word(*kernel).empty()) {
    problems.push_back("section [" + *config.default_section + "] has no kernel=");
  } else {
    check_boot_file("kernel", kernel, files.kernel_embedded, files, problems);
  }
  check_boot_file("ramdisk", config.default_value("ramdisk"), files.ramdisk_embedded, files,
                  problems);
  return problems;
}

}  // namespace xbb
