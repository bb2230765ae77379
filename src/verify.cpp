#include "xbb/verify.hpp"

#include <fnmatch.h>

#include <algorithm>
#include <sstream>

#include "xbb/error.hpp"
#include "xbb/esp.hpp"
#include "xbb/loader_conf.hpp"
#include "xbb/loader_entry.hpp"
#include "xbb/pe.hpp"
#include "xbb/xen_config.hpp"

namespace xbb {
namespace {

const std::string kEntriesDir = "loader/entries/";

std::string section_text(const std::string& file, const pe::Image& image, const std::string& name) {
  auto bytes = pe::section_contents(pe::bytes_of(file), image, name);
  return {bytes.begin(), bytes.end()};
}

std::string first_word(const std::string& text) {
  std::istringstream words(text);
  std::string word;
  words >> word;
  return word;
}

void check_file(const Esp& esp, const std::string& what, const std::string& name,
                const std::string& image_folder, std::vector<std::string>& problems) {
  try {
    std::string path = esp_path_of_xen_file(name, image_folder);
    if (esp.type(path) != EspFileType::regular) {
      problems.push_back(what + " " + name + " is not on the ESP (" + path + ")");
    }
  } catch (const Error& e) {
    problems.push_back(what + ": " + e.what());
  }
}

std::vector<std::string> check_entry(const Esp& esp, const std::string& path) {
  std::vector<std::string> problems;
  try {
    auto text = esp.read(path);
    if (!text) return {"vanished while reading"};
    LoaderEntry entry = parse_loader_entry(*text, path);
    if (!entry.efi || entry.efi->empty() || entry.efi->front() != '/') return {"no absolute efi line"};
    std::string image_path = entry.efi->substr(1);
    auto image_file = esp.read(image_path);
    if (!image_file) return {"image " + *entry.efi + " is missing"};
    pe::Image image = pe::parse(pe::bytes_of(*image_file));
    std::string config_text = section_text(*image_file, image, ".config");
    if (config_text.empty()) return {"image " + *entry.efi + " has no .config section"};
    ParsedXenConfig config = parse_xen_config(config_text, image_path + ":.config");
    if (!config.default_section) return {".config has no [global] default="};
    std::string folder = image_path.substr(0, image_path.rfind('/') + 1);
    std::string kernel = first_word(config.default_value("kernel"));
    if (kernel.empty()) {
      problems.push_back(".config section [" + *config.default_section + "] has no kernel=");
    } else if (section_text(*image_file, image, ".kernel").empty()) {
      check_file(esp, "kernel", kernel, folder, problems);
    }
    std::string ramdisk = config.default_value("ramdisk");
    if (!ramdisk.empty() && section_text(*image_file, image, ".ramdisk").empty()) {
      check_file(esp, "ramdisk", ramdisk, folder, problems);
    }
  } catch (const Error& e) {
    problems.push_back(e.what());
  }
  return problems;
}

// Entry ids as systemd-boot matches them: the file name without boot counter.
std::vector<std::string> entry_ids(const Esp& esp) {
  std::vector<std::string> ids;
  for (const auto& name : esp.list("loader/entries")) {
    if (auto parsed = parse_entry_name(name)) ids.push_back(parsed->stem + ".conf");
  }
  return ids;
}

std::vector<std::string> check_loader_conf(const Esp& esp) {
  std::vector<std::string> problems;
  try {
    auto text = esp.read("loader/loader.conf");
    if (!text) return problems;
    auto ids = entry_ids(esp);
    for (const char* key : {"default", "preferred"}) {
      auto value = loader_conf_value(*text, key);
      if (!value) continue;
      std::string pattern = *value;
      if (!pattern.ends_with(".conf")) {
        pattern += pattern.back() == '*' ? "" : ".conf";
      }
      bool found = std::any_of(ids.begin(), ids.end(), [&](const std::string& id) {
        return fnmatch(pattern.c_str(), id.c_str(), 0) == 0;
      });
      if (!found) problems.push_back(std::string(key) + " " + *value + " names no entry");
    }
  } catch (const Error& e) {
    problems.push_back(e.what());
  }
  return problems;
}

}  // namespace

bool Verification::ok() const {
  return loader_conf_problems.empty() &&
         std::all_of(entries.begin(), entries.end(),
                     [](const EntryCheck& check) { return check.problems.empty(); });
}

std::string esp_path_of_xen_file(const std::string& name, const std::string& image_folder) {
  std::vector<std::string> parts;
  std::string start = name.empty() || name.front() != '\\' ? image_folder : "";
  std::istringstream folders(start);
  std::string part;
  while (std::getline(folders, part, '/')) {
    if (!part.empty()) parts.push_back(part);
  }
  std::istringstream components(name);
  while (std::getline(components, part, '\\')) {
    if (part.empty() || part == ".") continue;
    if (part == "..") {
      if (parts.empty()) throw Error(name, "leaves the ESP");
      parts.pop_back();
      continue;
    }
    parts.push_back(part);
  }
  if (parts.empty()) throw Error(name, "names no file");
  std::string path;
  for (const auto& p : parts) path += (path.empty() ? "" : "/") + p;
  return path;
}

Verification verify_esp(const Esp& esp) {
  Verification result;
  for (const auto& name : esp.list("loader/entries")) {
    if (!name.starts_with("xen-") || !name.ends_with(".conf")) continue;
    result.entries.push_back({name, check_entry(esp, kEntriesDir + name)});
  }
  result.loader_conf_problems = check_loader_conf(esp);
  return result;
}

}  // namespace xbb
