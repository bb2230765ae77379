#include "xbb/verify.hpp"

#include <fcntl.h>

#include <algorithm>

#include "embed.hpp"
#include "limits.hpp"
#include "posix_io.hpp"
#include "xbb/boot_menu.hpp"
#include "xbb/error.hpp"
#include "xbb/esp.hpp"
#include "xbb/layout.hpp"
#include "xbb/loader_conf.hpp"
#include "xbb/loader_entry.hpp"
#include "xbb/pe.hpp"
#include "xbb/signer.hpp"
#include "xbb/unique_fd.hpp"
#include "xbb/xen_config.hpp"

namespace xbb {
namespace {

bool is_xen_entry(const std::string& name) {
  return name.starts_with("xen-") && name.ends_with(".conf");
}

// An entry's image ("/EFI/xen/x.efi" -> "EFI/xen/x.efi") and options, or
// nullopt when it has no absolute efi line.
struct EntryBoot {
  std::string image;
  std::optional<std::string> options;
};

std::optional<EntryBoot> boot_of(const std::string& text, const std::string& origin) {
  LoaderEntry entry = parse_loader_entry(text, origin);
  if (!entry.efi || entry.efi->size() < 2 || entry.efi->front() != '/') return std::nullopt;
  return EntryBoot{entry.efi->substr(1), entry.options};
}

// The configuration Xen uses for an entry, with where it comes from; or why
// there is none.
struct FoundConfig {
  std::optional<std::string> text;
  std::string origin;
  std::string problem;
};

FoundConfig config_of(const EspSnapshot& snapshot, const EntryBoot& boot,
                      const EspSnapshot::Image& image) {
  if (image.config) return {image.config, boot.image + ":.config", ""};
  const layout::ConfigLookup lookup = layout::config_lookup(boot.image, boot.options);
  if (lookup.file) {
    auto found = snapshot.config_files.find(*lookup.file);
    if (found == snapshot.config_files.end()) {
      return {std::nullopt, "", "configuration file " + *lookup.file + " (from -cfg=) is missing"};
    }
    return {found->second, *lookup.file, ""};
  }
  for (const auto& candidate : lookup.candidates) {
    auto found = snapshot.config_files.find(candidate);
    if (found != snapshot.config_files.end()) return {found->second, candidate, ""};
  }
  return {std::nullopt, "",
          "image /" + boot.image + " has no .config section, and the entry names no -cfg= file"};
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

// The ESP paths of the files a configuration names, for the snapshot; what
// it cannot read goes to `notes`.
std::vector<std::string> named_files(const std::string& config, const std::string& image_path,
                                     std::vector<std::string>& notes) {
  const auto note = [&notes](const std::string& why) { notes.push_back(why); };
  const std::optional<ParsedXenConfig> parsed =
      value_or_reason([&] { return parse_xen_config(config, image_path); }, note);
  if (!parsed) return {};
  std::vector<std::string> paths;
  const std::string folder = image_path.substr(0, image_path.rfind('/') + 1);
  for (const char* key : {"kernel", "ramdisk"}) {
    auto value = parsed->default_value(key);
    if (!value) continue;
    const std::string name = value->substr(0, value->find_first_of(" \t"));
    const std::optional<std::string> path =
        value_or_reason([&] { return esp_path_of_xen_file(name, folder); }, note);
    if (path) paths.push_back(*path);
  }
  return paths;
}

std::vector<std::string> check_entry(const EspSnapshot& snapshot, const std::string& name,
                                     const std::string& text) {
  const std::string origin = std::string(layout::kEntriesFolder) + "/" + name;
  try {
    auto boot = boot_of(text, origin);
    if (!boot) return {"no absolute efi line"};
    auto image = snapshot.images.find(boot->image);
    if (image == snapshot.images.end()) return {"image /" + boot->image + " is missing"};
    if (!image->second.problem.empty()) return {image->second.problem};
    if (!image->second.signature_problem.empty()) return {image->second.signature_problem};
    const FoundConfig config = config_of(snapshot, *boot, image->second);
    if (!config.text) return {config.problem};
    BootFiles files;
    files.image_path = boot->image;
    files.kernel_embedded = image->second.kernel;
    files.ramdisk_embedded = image->second.ramdisk;
    files.is_file = [&snapshot](const std::string& path) { return snapshot.files.count(path) > 0; };
    return boot_problems(parse_xen_config(*config.text, config.origin), files);
  } catch (const Error& e) {
    return {e.what()};
  }
}

// loader.conf is the ESP's (the first snapshot's); its default may select an
// entry of any partition.
std::vector<std::string> check_loader_conf(const std::vector<EspSnapshot>& partitions) {
  const EspSnapshot& esp = partitions.front();
  if (!esp.loader_conf_problem.empty()) return {esp.loader_conf_problem};
  if (!esp.loader_conf) return {};
  std::vector<MenuEntry> menu;
  std::vector<std::string> left_out;  // why an entry is not in the menu
  for (const EspSnapshot& snapshot : partitions) {
    for (const auto& [name, text] : snapshot.entries) {
      auto parsed = parse_entry_name(name);
      if (!parsed) continue;
      const std::optional<LoaderEntry> entry =
          value_or_reason([&text = text, &name = name] { return parse_loader_entry(text, name); },
                          [&left_out](const std::string& why) { left_out.push_back(why); });
      if (entry) menu.push_back(menu_entry(*parsed, *entry));
    }
    for (const auto& name : snapshot.unified_kernels) menu.push_back({name, {}, {}, {}, {}});
  }
  std::vector<std::string> problems;
  for (const char* key : {"default", "preferred"}) {
    auto value = loader_conf_value(*esp.loader_conf, key);
    if (!value) continue;
    if (pick(*value, menu)) continue;
    std::string problem = std::string(key) + " " + *value + " selects no entry";
    for (const auto& why : left_out) problem += "; not in the menu: " + why;
    problems.push_back(problem);
  }
  return problems;
}

}  // namespace

bool Verification::ok() const {
  return loader_conf_problems.empty() &&
         std::all_of(entries.begin(), entries.end(),
                     [](const EntryCheck& check) { return check.problems.empty(); });
}

// The signature check of an image, run on a private copy of its bytes: the
// bytes read are the bytes judged.
std::string signature_problem(const Signer& checker, const std::string& path,
                              const std::string& bytes) {
  PrivateFolder folder;
  const std::filesystem::path copy = folder.path() / "image.efi";
  try {
    UniqueFd fd(::open(copy.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
    if (!fd) throw Error(copy.string(), "cannot create: " + posix::error_text(errno));
    posix::write_all(fd.get(), bytes, copy.string());
    checker.check(fd.get());
    return {};
  } catch (const Error& e) {
    return path + ": " + e.what();
  }
}

EspSnapshot read_snapshot(const Esp& esp, const Signer* checker) {
  if (esp.type("loader") != EspFileType::folder) {
    throw Error(esp.root().string(), "not an ESP: it has no loader/ folder");
  }
  EspSnapshot snapshot;
  const std::string folder(layout::kEntriesFolder);
  for (const auto& [name, type, stamp] : esp.list_all(folder)) {
    if (!name.ends_with(".conf")) continue;
    try {
      auto text = esp.read(folder + "/" + name, limits::kLoaderTextBytes);
      if (text) snapshot.entries[name] = *text;
    } catch (const Error& e) {
      snapshot.unreadable_entries[name] = e.what();
    }
  }
  for (const auto& [name, type, stamp] : esp.list_all(std::string(layout::kUnifiedKernelFolder))) {
    if (type == EspFileType::regular && name.ends_with(".efi"))
      snapshot.unified_kernels.push_back(name);
  }
  const auto note = [&snapshot](const std::string& why) { snapshot.notes.push_back(why); };
  auto note_named_files = [&](const std::string& config, const std::string& image) {
    for (const auto& file : named_files(config, image, snapshot.notes)) {
      if (value_or_reason([&] { return esp.type(file); }, note) == EspFileType::regular)
        snapshot.files.insert(file);
    }
  };
  for (const auto& [name, text] : snapshot.entries) {
    if (!is_xen_entry(name)) continue;
    const std::optional<EntryBoot> boot =
        value_or_reason(
            [&, &text = text, &name = name] { return boot_of(text, folder + "/" + name); }, note)
            .value_or(std::nullopt);
    if (!boot) continue;
    if (!snapshot.images.count(boot->image)) {
      try {
        auto bytes = esp.read(boot->image, limits::kEspImageBytes);
        if (!bytes) continue;
        snapshot.images[boot->image] = read_image(boot->image, *bytes);
        if (checker) {
          snapshot.images[boot->image].signature_problem =
              signature_problem(*checker, boot->image, *bytes);
        }
      } catch (const Error& e) {
        snapshot.images[boot->image] = {e.what(), std::nullopt, false, false, ""};
      }
    }
    const EspSnapshot::Image& image = snapshot.images[boot->image];
    if (image.config) {
      note_named_files(*image.config, boot->image);
      continue;
    }
    const layout::ConfigLookup lookup = layout::config_lookup(boot->image, boot->options);
    std::vector<std::string> candidates = lookup.candidates;
    if (lookup.file) candidates = {*lookup.file};
    for (const auto& candidate : candidates) {
      auto config =
          value_or_reason([&] { return esp.read(candidate, limits::kLoaderTextBytes); }, note);
      if (!config) break;  // not a file Xen could open either
      if (!*config) continue;
      note_named_files(**config, boot->image);
      snapshot.config_files[candidate] = std::move(**config);
      break;
    }
  }
  try {
    snapshot.loader_conf = esp.read(std::string(layout::kLoaderConf), limits::kLoaderTextBytes);
  } catch (const Error& e) {
    snapshot.loader_conf_problem = e.what();
  }
  return snapshot;
}

Verification verify_snapshot(const EspSnapshot& snapshot) { return verify_partitions({snapshot}); }

Verification verify_partitions(const std::vector<EspSnapshot>& partitions) {
  Verification result;
  for (const EspSnapshot& snapshot : partitions) {
    for (const auto& [name, text] : snapshot.entries) {
      if (is_xen_entry(name)) result.entries.push_back({name, check_entry(snapshot, name, text)});
    }
    for (const auto& [name, problem] : snapshot.unreadable_entries) {
      if (is_xen_entry(name)) result.entries.push_back({name, {problem}});
    }
  }
  std::sort(result.entries.begin(), result.entries.end(),
            [](const EntryCheck& a, const EntryCheck& b) { return a.entry < b.entry; });
  result.loader_conf_problems = check_loader_conf(partitions);
  return result;
}

}  // namespace xbb
