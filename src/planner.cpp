#include "xbb/planner.hpp"

#include <fnmatch.h>

#include <algorithm>
#include <set>

#include "xbb/error.hpp"
#include "xbb/loader_conf.hpp"
#include "xbb/xen_config.hpp"

namespace fs = std::filesystem;

namespace xbb {
namespace {

const std::string kEntriesDir = "loader/entries/";
const std::string kImageDir = "EFI/xen/";
const std::string kConfigSection = "nixos";

// One Xen entry that is to exist after the run.
struct Target {
  const Generation* generation = nullptr;
  std::string stem;  // "xen-<rest>"
  std::string entry_path;
  LoaderEntry entry;
  std::string entry_text;
  std::string image_path;
  std::string config_text;
};

// An existing Xen entry on the ESP.
struct Existing {
  std::string path;
  std::string text;
};

std::string label(const Generation& generation) { return "nixos-" + generation.rest; }

XenConfig xen_config_for(const Generation& generation, std::vector<std::string>& warnings) {
  const Bootspec& spec = *generation.bootspec;
  XenConfig config;
  config.section = kConfigSection;
  config.xen_params = spec.xen->params;
  config.kernel_params.push_back("init=" + spec.init);
  config.kernel_params.insert(config.kernel_params.end(), spec.kernel_params.begin(),
                              spec.kernel_params.end());
  if (generation.embed_kernel) {
    if (spec.initrd_secrets) {
      throw Error(label(generation),
                  "has initrd secrets, which only systemd-boot's installer can add; "
                  "use --source entries");
    }
    // The kernel= line stays: it carries dom0's command line. Its file name
    // is not opened, the embedded .kernel section is used instead.
    config.kernel = fs::path(spec.kernel).filename().string();
    return config;
  }
  const LoaderEntry& entry = generation.entry;
  if (!entry.kernel) throw Error(generation.source, "no linux line");
  config.kernel = xen_file_name(*entry.kernel);
  if (!entry.initrds.empty()) config.ramdisk = xen_file_name(entry.initrds.front());
  if (entry.initrds.size() > 1) {
    std::string ignored;
    for (std::size_t i = 1; i < entry.initrds.size(); ++i) ignored += " " + entry.initrds[i];
    warnings.push_back(label(generation) + ": Xen loads a single ramdisk; ignoring initrd" +
                       ignored);
  }
  return config;
}

ImageRecipe recipe_for(const Generation& generation, const std::string& config_text) {
  ImageRecipe recipe;
  recipe.xen_efi = generation.xen_efi;
  recipe.sections.push_back({".config", config_text});
  if (generation.embed_kernel) {
    recipe.sections.push_back({".kernel", generation.kernel_file});
    if (generation.initrd_file) recipe.sections.push_back({".ramdisk", *generation.initrd_file});
  }
  return recipe;
}

// The entry file name: the source's boot counter carries over. An existing
// entry whose content stays the same keeps its current counter; a new or
// changed one starts with all of the source's tries.
std::string entry_file_name(const Target& target, const std::optional<BootCounter>& counter,
                            const std::optional<Existing>& existing) {
  if (!counter) return target.stem + ".conf";
  if (existing && existing->text == target.entry_text) {
    return existing->path.substr(kEntriesDir.size());
  }
  return target.stem + "+" + std::to_string(counter->left + counter->done.value_or(0)) + ".conf";
}

// Which fields differ between the existing entry (and its image's .config)
// and the target; empty when nothing does.
std::string changed_fields(const Target& target, const Existing& existing,
                           const std::map<std::string, std::string>& image_configs) {
  std::vector<std::string> fields;
  try {
    LoaderEntry old = parse_loader_entry(existing.text, existing.path);
    const LoaderEntry& now = target.entry;
    if (old.title != now.title) fields.push_back("title");
    if (old.version != now.version) fields.push_back("version");
    if (old.machine_id != now.machine_id) fields.push_back("machine-id");
    if (old.sort_key != now.sort_key) fields.push_back("sort-key");
    if (old.efi != now.efi) fields.push_back("efi");
  } catch (const Error&) {
    fields.push_back("entry");
  }
  auto config = image_configs.find(target.image_path);
  if (config == image_configs.end()) {
    if (fields.empty() || fields.back() != "efi") fields.push_back("image");
  } else if (config->second != target.config_text) {
    try {
      auto old = parse_xen_config(config->second, target.image_path);
      auto now = parse_xen_config(target.config_text, "plan");
      for (const char* key : {"options", "kernel", "ramdisk"}) {
        if (old.default_value(key) != now.default_value(key)) fields.push_back(std::string("xen ") + key);
      }
    } catch (const Error&) {
      fields.push_back("xen config");
    }
    if (fields.empty()) fields.push_back("xen config");
  }
  std::string detail;
  for (const auto& field : fields) detail += (detail.empty() ? "" : ", ") + field;
  return detail;
}

bool is_glob(const std::string& value) {
  return value.find_first_of("*?[") != std::string::npos;
}

// The generation systemd-boot boots when nobody picks one: the entry
// loader.conf names (preferred before default), else the newest generation
// of the system profile.
const Generation* default_generation(const std::vector<Generation>& generations,
                                     const std::optional<std::string>& loader_conf) {
  if (loader_conf) {
    for (const char* key : {"preferred", "default"}) {
      auto value = loader_conf_value(*loader_conf, key);
      if (!value || is_glob(*value)) continue;
      std::string id = *value;
      if (id.ends_with(".conf")) id.resize(id.size() - 5);
      for (const auto& generation : generations) {
        if (label(generation) == id) return &generation;
      }
    }
  }
  const Generation* newest = nullptr;
  for (const auto& generation : generations) {
    bool system = generation.rest.rfind("generation-", 0) == 0 &&
                  generation.rest.find("-specialisation-") == std::string::npos;
    bool numbered = generation.number.has_value();
    if ((system || !generation.number) && numbered &&
        (!newest || *generation.number > *newest->number)) {
      newest = &generation;
    }
  }
  return newest;
}

// "default nixos-X.conf" -> "default xen-X.conf" when xen-X exists after the
// run; globs ("nixos-*") when at least one Xen entry matches.
RetargetFn retarget_to(const std::set<std::string>& stems) {
  return [&stems](std::string_view value) -> std::optional<std::string> {
    std::string id(value);
    std::string suffix;
    if (id.ends_with(".conf")) {
      suffix = ".conf";
      id.resize(id.size() - 5);
    }
    if (id.rfind("nixos-", 0) != 0) return std::nullopt;
    std::string xen = "xen-" + id.substr(6);
    bool exists = is_glob(xen) ? std::any_of(stems.begin(), stems.end(),
                                             [&](const std::string& stem) {
                                               return fnmatch(xen.c_str(), stem.c_str(), 0) == 0;
                                             })
                               : stems.count(xen) > 0;
    if (!exists) return std::nullopt;
    return xen + suffix;
  };
}

}  // namespace

Planned make_plan(const std::vector<Generation>& generations, const EspState& state,
                  const std::map<std::string, std::string>& image_configs,
                  const PlanOptions& options) {
  Planned out;
  Plan& plan = out.plan;

  std::map<std::string, Existing> existing;  // by stem
  for (const auto& [path, text] : state.xen_entries) {
    auto name = parse_entry_name(path.substr(kEntriesDir.size()));
    if (name) existing[name->stem] = {path, text};
  }
  auto existing_for = [&](const std::string& stem) -> std::optional<Existing> {
    auto it = existing.find(stem);
    if (it == existing.end()) return std::nullopt;
    return it->second;
  };

  const Generation* by_default = default_generation(generations, state.loader_conf);
  std::vector<Target> targets;
  std::set<std::string> kept;  // stems of generations we could not rebuild: left as they are
  for (const auto& generation : generations) {
    std::string stem = "xen-" + generation.rest;
    bool is_default = &generation == by_default;
    if (!generation.bootspec) {
      out.warnings.push_back(label(generation) + ": skipped: " + generation.problem);
      kept.insert(stem);
      if (is_default) out.default_failure = label(generation);
      continue;
    }
    const Bootspec& spec = *generation.bootspec;
    if (!spec.xen) {
      out.notes.push_back(label(generation) + ": its bootspec has no Xen extension, no Xen entry");
      continue;
    }
    if (spec.devicetree) {
      out.warnings.push_back(label(generation) +
                             ": Xen's EFI configuration carries no devicetree; it is left out");
    }
    try {
      Target target;
      target.generation = &generation;
      target.stem = stem;
      target.image_path = kImageDir + stem + ".efi";
      target.config_text = render_xen_config(xen_config_for(generation, out.warnings));
      target.entry.title = generation.entry.title.value_or("NixOS") + " (with Xen Hypervisor)";
      target.entry.version = generation.entry.version;
      target.entry.efi = "/" + target.image_path;
      target.entry.machine_id = generation.entry.machine_id;
      target.entry.sort_key = generation.entry.sort_key;
      target.entry_text = render_loader_entry(target.entry);
      target.entry_path =
          kEntriesDir + entry_file_name(target, generation.counter, existing_for(stem));
      out.notes.push_back(label(generation) + ": Xen (bootspec v" +
                          std::to_string(spec.xen->schema) + ") " + spec.xen->efi_path + " -> " +
                          target.entry_path + ", " + target.image_path);
      targets.push_back(std::move(target));
    } catch (const Error& e) {
      out.warnings.push_back(label(generation) + ": skipped: " + e.what());
      kept.insert(stem);
      if (is_default) out.default_failure = label(generation);
    }
  }

  std::set<std::string> keep_paths;  // files that stay: targets and what kept entries use
  std::set<std::string> stems;       // Xen entries that exist after the run
  for (const auto& target : targets) {
    plan.images.push_back({target.image_path, recipe_for(*target.generation, target.config_text)});
    plan.entries.push_back({target.entry_path, target.entry_text});
    keep_paths.insert(target.entry_path);
    keep_paths.insert(target.image_path);
    stems.insert(target.stem);
    auto old = existing_for(target.stem);
    if (!old) {
      plan.changes.push_back({'+', target.stem, ""});
    } else {
      std::string detail = changed_fields(target, *old, image_configs);
      if (!detail.empty()) plan.changes.push_back({'~', target.stem, detail});
    }
  }
  for (const auto& [stem, entry] : existing) {
    if (!kept.count(stem)) continue;
    keep_paths.insert(entry.path);
    stems.insert(stem);
    try {
      auto efi = parse_loader_entry(entry.text, entry.path).efi;
      if (efi && efi->size() > 1) keep_paths.insert(efi->substr(1));
    } catch (const Error&) {
      out.notes.push_back(entry.path + ": kept unread, its generation could not be rebuilt");
    }
  }

  for (const auto& [stem, entry] : existing) {
    if (keep_paths.count(entry.path)) continue;
    plan.removals.push_back(entry.path);
    if (!stems.count(stem)) plan.changes.push_back({'-', stem, ""});
  }
  for (const auto& path : state.xen_images) {
    if (!keep_paths.count(path)) plan.removals.push_back(path);
  }
  for (const auto& path : state.legacy_images) {
    if (!keep_paths.count(path)) plan.removals.push_back(path);
  }

  if (options.retarget_default && state.loader_conf) {
    std::string text = retarget_loader_conf(*state.loader_conf, retarget_to(stems));
    if (text != *state.loader_conf) {
      plan.loader_conf = text;
      out.notes.push_back("loader/loader.conf: default retargeted to a Xen entry");
    }
  }
  return out;
}

}  // namespace xbb
