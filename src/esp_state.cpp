// Reading the ESP as the planner needs it (the I/O half of planning).
#include "limits.hpp"
#include "xbb/error.hpp"
#include "xbb/esp.hpp"
#include "xbb/layout.hpp"
#include "xbb/pe.hpp"

namespace xbb {
namespace {

// The shell script's entries point at its own images, EFI/nixos/xen-*.efi.
bool written_by_script(const std::string& text) {
  try {
    auto efi = parse_loader_entry(text, "").efi;
    return efi && efi->starts_with("/" + std::string(layout::kLegacyImageFolder) + "/xen-") &&
           efi->ends_with(".efi");
  } catch (const Error&) {
    return false;
  }
}

// The embedded .config of an image, "" when it has none or is not readable.
std::string image_config(const Esp& esp, const std::string& path) {
  try {
    auto bytes =
        esp.read(path, limits::kXenImageBytes + limits::kKernelBytes + limits::kInitrdBytes);
    if (!bytes) return {};
    auto file = pe::bytes_of(*bytes);
    auto config = pe::section_contents(file, pe::parse(file), ".config");
    return std::string(config.begin(), config.end());
  } catch (const Error&) {
    return {};
  }
}

}  // namespace

EspState read_esp_state(const Esp& esp, const std::vector<Generation>& generations,
                        bool with_loader_conf) {
  EspState state;
  const std::string entries(layout::kEntriesFolder);
  for (const auto& [name, type] : esp.list_all(entries)) {
    if (!name.starts_with("xen-") || !name.ends_with(".conf")) continue;
    const std::string path = entries + "/" + name;
    ExistingFile& file = state.xen_entries[path];
    if (type == EspFileType::symlink) {
      file.ours = true;
    } else if (type == EspFileType::regular) {
      file.text = esp.read(path, limits::kLoaderTextBytes).value_or("");
      file.ours = layout::is_marked(file.text) || written_by_script(file.text);
    } else {
      state.xen_entries.erase(path);
    }
  }
  const std::string images(layout::kImageFolder);
  for (const auto& [name, type] : esp.list_all(images)) {
    const bool image = name.ends_with(".efi");
    if (!image && !name.ends_with(".cfg")) continue;
    const std::string path = images + "/" + name;
    ExistingFile& file = state.xen_images[path];
    if (type == EspFileType::symlink) {
      file.ours = true;
    } else if (type == EspFileType::regular) {
      file.text =
          image ? image_config(esp, path) : esp.read(path, limits::kLoaderTextBytes).value_or("");
      file.ours = layout::is_marked(file.text);
    } else {
      state.xen_images.erase(path);
    }
  }
  for (const std::string& name : esp.list(std::string(layout::kLegacyImageFolder))) {
    if (name.starts_with("xen-") && name.ends_with(".efi")) {
      state.legacy_images.push_back(std::string(layout::kLegacyImageFolder) + "/" + name);
    }
  }
  for (const auto& generation : generations) {
    std::vector<std::string> named = generation.entry.initrds;
    if (generation.entry.kernel) named.push_back(*generation.entry.kernel);
    for (const auto& path : named) {
      try {
        if (path.size() > 1 && esp.type(path.substr(1)) == EspFileType::regular) {
          state.boot_files.insert(path.substr(1));
        }
      } catch (const Error&) {
        // Not a name the ESP can hold: not there, as the configuration check will say.
      }
    }
  }
  if (with_loader_conf) {
    try {
      state.loader_conf = esp.read(std::string(layout::kLoaderConf), limits::kLoaderTextBytes);
    } catch (const Error& e) {
      state.loader_conf_problem = e.what();
    }
  }
  return state;
}

}  // namespace xbb
