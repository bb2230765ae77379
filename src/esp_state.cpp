// Reading the ESP as the planner needs it (the I/O half of planning).
#include "limits.hpp"
#include "xbb/digest.hpp"
#include "xbb/error.hpp"
#include "xbb/esp.hpp"
#include "xbb/layout.hpp"
#include "xbb/pe.hpp"
#include "xbb/record.hpp"

namespace xbb {
namespace {

// The shell script's entries point at its own images, EFI/nixos/xen-*.efi.
// An entry that does not parse is not one of them; `notes` gets why.
bool written_by_script(const std::string& text, const std::string& path,
                       std::vector<std::string>& notes) {
  const std::optional<LoaderEntry> entry = value_or_reason(
      [&] { return parse_loader_entry(text, path); },
      [&notes](const std::string& why) { notes.push_back(why + " (not the script's entry)"); });
  if (!entry) return false;
  const std::string prefix = std::string("/").append(layout::kLegacyImageFolder).append("/xen-");
  return entry->efi && entry->efi->starts_with(prefix) && entry->efi->ends_with(".efi");
}

// An image the record does not vouch for, read once: its record hash, its
// embedded .config, and whether the tool wrote it (a marked .config, or a
// shared image's name holding its SHA-256, computed only for such a name).
void read_image(const Esp& esp, const std::string& path, const std::string& name,
                ExistingFile& file, std::vector<std::string>& notes) {
  FileStamp stamp;
  auto bytes = esp.read(path, limits::kEspImageBytes, &stamp);
  if (!bytes) return;
  file.stamp = stamp;
  file.digest = record_hash(*bytes);
  // An image that does not parse is not one the tool wrote; the digest still
  // tells whether it is one it would write.
  const auto config = value_or_reason(
      [&] {
        auto image = pe::bytes_of(*bytes);
        return pe::section_contents(image, pe::parse(image), ".config");
      },
      [&](const std::string& why) { notes.push_back(path + ": " + why + " (not read as ours)"); });
  if (config) file.text.assign(config->begin(), config->end());
  auto shared = layout::shared_image_digest(name);
  if (shared) file.sha256 = sha256_hex(*bytes);
  file.ours = layout::is_marked(file.text) || (shared && file.sha256->starts_with(*shared));
}

// How much of an image is read first to check its headers and section
// table: the tool's images have 4 KiB of headers or less (Xen's own
// SizeOfHeaders); larger headers cost a second read, of up to
// pe::kHeaderPrefixSize bytes.
constexpr std::size_t kHeaderReadBytes = 4096;

// An image's headers and section table when they read as an EFI
// application, else nullopt. Reads the first kHeaderReadBytes, and more only
// when the headers are larger. Throws Error when a read fails.
std::optional<pe::Image> efi_headers(const Esp::ReadAt& read_at, std::uint64_t size) {
  const auto parse = [size](const std::string& headers) -> std::optional<pe::Image> {
    try {
      return pe::parse_headers(pe::bytes_of(headers), size);
    } catch (const Error&) {
      return std::nullopt;
    }
  };
  const std::string first = read_at(0, kHeaderReadBytes);
  std::optional<pe::Image> image = parse(first);
  if (!image && first.size() < size) image = parse(read_at(0, pe::kHeaderPrefixSize));
  if (!image) return std::nullopt;
  try {
    pe::check_efi_application(*image);
  } catch (const Error&) {
    return std::nullopt;
  }
  return image;
}

// Whether the record vouches for the image at `path` (`item` as listed), and
// then `file` is what it says of it (see vouched_image).
bool vouched(const Esp& esp, const std::optional<Record>& record, const std::string& path,
             const EspItem& item, ImageChecks checks, ExistingFile& file) {
  const std::optional<Record::Image> recorded = recorded_image(record, path, item.stamp);
  if (!recorded) return false;
  const std::optional<ImageRead> read =
      checks == ImageChecks::stamp_only
          ? ImageRead{item.stamp, true, !recorded->config.empty(), recorded->config}
          : read_image_check(esp, path, recorded->config.size(), recorded->stamp);
  if (!read) return false;
  std::optional<ExistingFile> vouched_for = vouched_image(*recorded, item.name, *read);
  if (!vouched_for) return false;
  file = std::move(*vouched_for);
  return true;
}

}  // namespace

// One open, a read of the headers and one of the .config: never the body.
// nullopt when a read fails (the image is then read again whole, which says
// what is wrong when it matters).
std::optional<ImageRead> read_image_check(const Esp& esp, const std::string& path,
                                          std::uint64_t config_size,
                                          const std::optional<FileStamp>& expected) {
  ImageRead read;
  try {
    esp.read_pieces(path, [&](const FileStamp& stamp, const Esp::ReadAt& read_at) {
      read.stamp = stamp;
      if (expected && stamp != *expected) return;
      const std::optional<pe::Image> image = efi_headers(read_at, stamp.size);
      if (!image) return;
      read.efi_application = true;
      const auto extent = pe::section_extent(*image, ".config");
      read.has_config = extent.has_value();
      if (extent && extent->size == config_size)
        read.config = read_at(extent->offset, static_cast<std::size_t>(extent->size));
    });
  } catch (const Error&) {
    return std::nullopt;
  }
  return read;
}

EspState read_esp_state(const Esp& esp, const std::vector<Generation>& generations,
                        const Esp* loader_conf_from, const std::optional<Record>& record,
                        ImageChecks checks) {
  EspState state;
  const std::string entries(layout::kEntriesFolder);
  for (const EspItem& item : esp.list_all(entries, Esp::Stamps::without)) {
    if (!item.name.starts_with("xen-") || !item.name.ends_with(".conf")) continue;
    const std::string path = entries + "/" + item.name;
    if (item.type == EspFileType::symlink) {
      state.xen_entries[path].ours = true;
    } else if (item.type == EspFileType::regular) {
      ExistingFile& file = state.xen_entries[path];
      if (record && record->texts.count(path)) {
        if (auto recorded = vouched_text(record, path, esp.stat(path).stamp)) {
          file = std::move(*recorded);
          continue;
        }
      }
      FileStamp stamp;
      file.text = esp.read(path, limits::kLoaderTextBytes, &stamp).value_or("");
      file.stamp = stamp;
      file.ours = layout::is_marked(file.text) || written_by_script(file.text, path, state.notes);
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
        if (!vouched(esp, record, path, item, checks, file))
          read_image(esp, path, item.name, file, state.notes);
      } else if (auto recorded = vouched_text(record, path, item.stamp)) {
        file = std::move(*recorded);
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
  for (const auto& path : files_named_on_the_esp(generations)) {
    // A name the ESP cannot hold is not there, as the configuration check will say.
    const std::optional<EspFileType> type = value_or_reason(
        [&] { return esp.type(path); },
        [&](const std::string& why) { state.notes.push_back(why + " (taken as missing)"); });
    if (type == EspFileType::regular) state.boot_files.insert(path);
  }
  if (loader_conf_from) {
    try {
      state.loader_conf =
          loader_conf_from->read(std::string(layout::kLoaderConf), limits::kLoaderTextBytes);
    } catch (const Error& e) {
      state.loader_conf_problem = e.what();
    }
  }
  return state;
}

}  // namespace xbb
