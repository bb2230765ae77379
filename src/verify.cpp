#include "xbb/verify.hpp"

#include <algorithm>

#include "limits.hpp"
#include "xbb/boot_menu.hpp"
#include "xbb/error.hpp"
#include "xbb/esp.hpp"
#include "xbb/layout.hpp"
#include "xbb/loader_conf.hpp"
#include "xbb/loader_entry.hpp"
#include "xbb/pe.hpp"
#include "xbb/xen_config.hpp"

namespace xbb {
namespace {

bool is_xen_entry(const std::string& name) {
  return name.starts_with("xen-") && name.ends_with(".conf");
}

// The image an entry names ("/EFI/xen/x.efi" -> "EFI/xen/x.efi"), or why none.
std::optional<std::string> image_of(const std::string& text, const std::string& origin,
                                    std::string& problem) {
  LoaderEntry entry = parse_loader_entry(text, origin);
  if (!entry.efi || entry.efi->size() < 2 || entry.efi->front() != '/') {
    problem = "no absolute efi line";
    return std::nullopt;
  }
  return entry.efi->substr(1);
}

EspSnapshot::Image read_image(const std::string& path, const std::string& bytes) {
  EspSnapshot::Image image;
  try {
    const auto file = pe::bytes_of(bytes);
    const pe::Image parsed = pe::parse(file);
    pe::check_efi_application(parsed);
    auto text = [&](const char* name) {
      auto section = pe::section_contents(file, parsed, name);
      return std::string(section.begin(), section.end());
    };
    for (const auto& section : parsed.sections) {
      if (section.name == ".config") image.config = text(".config");
      if (section.name == ".kernel") image.kernel = true;
      if (section.name == ".ramdisk") image.ramdisk = true;
    }
  } catch (const Error& e) {
    image.problem = path + ": " + e.what();
  }
  return image;
}

// The ESP paths of the files a configuration names, for the snapshot.
std::vector<std::string> named_files(const std::string& config, const std::string& image_path) {
  std::vector<std::string> paths;
  try {
    ParsedXenConfig parsed = parse_xen_config(config, image_path);
    const std::string folder = image_path.substr(0, image_path.rfind('/') + 1);
    for (const char* key : {"kernel", "ramdisk"}) {
      auto value = parsed.default_value(key);
      if (!value) continue;
      std::string name = value->substr(0, value->find_first_of(" \t"));
      try {
        paths.push_back(esp_path_of_xen_file(name, folder));
      } catch (const Error&) {
      }
    }
  } catch (const Error&) {
  }
  return paths;
}

std::vector<std::string> check_entry(const EspSnapshot& snapshot, const std::string& name,
                                     const std::string& text) {
  const std::string origin = std::string(layout::kEntriesFolder) + "/" + name;
  try {
    std::string problem;
    auto image_path = image_of(text, origin, problem);
    if (!image_path) return {problem};
    auto image = snapshot.images.find(*image_path);
    if (image == snapshot.images.end()) return {"image /" + *image_path + " is missing"};
    if (!image->second.problem.empty()) return {image->second.problem};
    if (!image->second.config) return {"image /" + *image_path + " has no .config section"};
    BootFiles files;
    files.image_path = *image_path;
    files.kernel_embedded = image->second.kernel;
    files.ramdisk_embedded = image->second.ramdisk;
    files.is_file = [&snapshot](const std::string& path) { return snapshot.files.count(path) > 0; };
    return boot_problems(parse_xen_config(*image->second.config, *image_path + ":.config"), files);
  } catch (const Error& e) {
    return {e.what()};
  }
}

std::vector<std::string> check_loader_conf(const EspSnapshot& snapshot) {
  if (!snapshot.loader_conf_problem.empty()) return {snapshot.loader_conf_problem};
  if (!snapshot.loader_conf) return {};
  std::vector<MenuEntry> menu;
  for (const auto& [name, text] : snapshot.entries) {
    auto parsed = parse_entry_name(name);
    if (!parsed) continue;
    try {
      menu.push_back(menu_entry(*parsed, parse_loader_entry(text, name)));
    } catch (const Error&) {
    }
  }
  std::vector<std::string> problems;
  for (const char* key : {"default", "preferred"}) {
    auto value = loader_conf_value(*snapshot.loader_conf, key);
    if (!value) continue;
    if (!pick(*value, menu))
      problems.push_back(std::string(key) + " " + *value + " selects no entry");
  }
  return problems;
}

}  // namespace

bool Verification::ok() const {
  return loader_conf_problems.empty() &&
         std::all_of(entries.begin(), entries.end(),
                     [](const EntryCheck& check) { return check.problems.empty(); });
}

EspSnapshot read_snapshot(const Esp& esp) {
  if (esp.type("loader") != EspFileType::folder) {
    throw Error(esp.root().string(), "not an ESP: it has no loader/ folder");
  }
  EspSnapshot snapshot;
  const std::string folder(layout::kEntriesFolder);
  for (const auto& [name, type] : esp.list_all(folder)) {
    if (!name.ends_with(".conf")) continue;
    try {
      auto text = esp.read(folder + "/" + name, limits::kLoaderTextBytes);
      if (text) snapshot.entries[name] = *text;
    } catch (const Error& e) {
      snapshot.unreadable_entries[name] = e.what();
    }
  }
  for (const auto& [name, text] : snapshot.entries) {
    if (!is_xen_entry(name)) continue;
    std::string problem;
    std::optional<std::string> path;
    try {
      path = image_of(text, folder + "/" + name, problem);
    } catch (const Error&) {
    }
    if (!path || snapshot.images.count(*path)) continue;
    try {
      auto bytes =
          esp.read(*path, limits::kXenImageBytes + limits::kKernelBytes + limits::kInitrdBytes);
      if (!bytes) continue;
      EspSnapshot::Image image = read_image(*path, *bytes);
      if (image.config) {
        for (const auto& file : named_files(*image.config, *path)) {
          try {
            if (esp.type(file) == EspFileType::regular) snapshot.files.insert(file);
          } catch (const Error&) {
          }
        }
      }
      snapshot.images[*path] = std::move(image);
    } catch (const Error& e) {
      snapshot.images[*path] = {e.what(), std::nullopt, false, false};
    }
  }
  try {
    snapshot.loader_conf = esp.read(std::string(layout::kLoaderConf), limits::kLoaderTextBytes);
  } catch (const Error& e) {
    snapshot.loader_conf_problem = e.what();
  }
  return snapshot;
}

Verification verify_snapshot(const EspSnapshot& snapshot) {
  Verification result;
  for (const auto& [name, text] : snapshot.entries) {
    if (is_xen_entry(name)) result.entries.push_back({name, check_entry(snapshot, name, text)});
  }
  for (const auto& [name, problem] : snapshot.unreadable_entries) {
    if (is_xen_entry(name)) result.entries.push_back({name, {problem}});
  }
  std::sort(result.entries.begin(), result.entries.end(),
            [](const EntryCheck& a, const EntryCheck& b) { return a.entry < b.entry; });
  result.loader_conf_problems = check_loader_conf(snapshot);
  return result;
}

}  // namespace xbb
