// Reading the ESP as the planner needs it (the I/O half of planning).
#include "limits.hpp"
#include "xbb/digest.hpp"
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
    const std::string prefix = std::string("/").append(layout::kLegacyImageFolder).append("/xen-");
    return efi && efi->starts_with(prefix) && efi->ends_with(".efi");
  } catch (const Error&) {
    return false;
  }
}

// An image the record does not vouch for, read once: its digest, its
// embedded .config, and whether the tool wrote it (a marked .config, or a
// shared image's name holding its digest).
void read_image(const Esp& esp, const std::string& path, const std::string& name,
                ExistingFile& file) {
  FileStamp stamp;
  auto bytes = esp.read(path, limits::kEspImageBytes, &stamp);
  if (!bytes) return;
  file.stamp = stamp;
  file.digest = sha256_hex(*bytes);
  try {
    auto image = pe::bytes_of(*bytes);
    const pe::Image parsed = pe::parse(image);
    auto config = pe::section_contents(image, parsed, ".config");
    file.text.assign(config.begin(), config.end());
  } catch (const Error&) {
    // Not an image the tool wrote; the digest still tells whether it is one it would write.
  }
  auto shared = layout::shared_image_digest(name);
  file.ours = layout::is_marked(file.text) || (shared && file.digest->starts_with(*shared));
}

// What the record says of an image whose stamp is the recorded one.
bool vouched(const std::optional<Record>& record, const std::string& path, const EspItem& item,
             ExistingFile& file) {
  if (!record) return false;
  auto found = record->images.find(path);
  if (found == record->images.end() || found->second.stamp != item.stamp) return false;
  file = {found->second.config, true, item.stamp, found->second.digest, found->second.recipe};
  return true;
}

}  // namespace

EspState read_esp_state(const Esp& esp, const std::vector<Generation>& generations,
                        bool with_loader_conf, const std::optional<Record>& record) {
  EspState state;
  const std::string entries(layout::kEntriesFolder);
  for (const EspItem& item : esp.list_all(entries)) {
    if (!item.name.starts_with("xen-") || !item.name.ends_with(".conf")) continue;
    const std::string path = entries + "/" + item.name;
    if (item.type == EspFileType::symlink) {
      state.xen_entries[path].ours = true;
    } else if (item.type == EspFileType::regular) {
      ExistingFile& file = state.xen_entries[path];
      file.stamp = item.stamp;
      file.text = esp.read(path, limits::kLoaderTextBytes).value_or("");
      file.ours = layout::is_marked(file.text) || written_by_script(file.text);
    }
  }
  const std::string images(layout::kImageFolder);
  for (const EspItem& item : esp.list_all(images)) {
    const bool image = item.name.ends_with(".efi");
    if (!image && !item.name.ends_with(".cfg")) continue;
    const std::string path = images + "/" + item.name;
    if (item.type == EspFileType::symlink) {
      state.xen_images[path].ours = true;
    } else if (item.type == EspFileType::regular) {
      ExistingFile& file = state.xen_images[path];
      if (image) {
        if (!vouched(record, path, item, file)) read_image(esp, path, item.name, file);
      } else {
        file.stamp = item.stamp;
        file.text = esp.read(path, limits::kLoaderTextBytes).value_or("");
        file.ours = layout::is_marked(file.text);
      }
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
        // An ESP path ("/EFI/nixos/k.efi"); anything else names no file here.
        if (path.size() > 1 && path.front() == '/' &&
            esp.type(path.substr(1)) == EspFileType::regular) {
          state.boot_files.insert(path.substr(1));
        }
      } catch (const Error&) {
        // Not a name the ESP can hold: not there, as the configuration check will say.
      }
    }
  }
  if (record) state.reported_foreign.insert(record->foreign.begin(), record->foreign.end());
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
