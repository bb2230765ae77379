#pragma once

#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace xbb {

// A section to add to a Xen image: literal bytes (.config) or the bytes of a
// host file (.kernel, .ramdisk), read when the plan is applied.
struct SectionSource {
  std::string name;
  std::variant<std::string, std::filesystem::path> content;
};

// How a unified image is made: the host's xen.efi plus sections.
struct ImageRecipe {
  std::filesystem::path xen_efi;
  std::vector<SectionSource> sections;
};

// One file the run owns, by its path relative to the ESP root
// ("EFI/xen/xen-generation-42.efi", "loader/entries/xen-generation-42.conf").
struct FileWrite {
  std::string path;
  std::variant<std::string, ImageRecipe> content;
};

// What `info` reports: +name added, -name removed, ~name changed (detail says
// which fields).
struct Change {
  char kind = '+';
  std::string name;
  std::string detail;
};

// Everything a run will do to the ESP, in the order it must be done:
// images, then entries, then loader.conf, then removals.
struct Plan {
  std::vector<FileWrite> images;
  std::vector<FileWrite> entries;
  std::optional<std::string> loader_conf;  // new text; nullopt leaves the file alone
  std::vector<std::string> removals;       // ESP-relative paths of stale files
  std::vector<Change> changes;
};

// What the planner needs to know of the ESP as it is now. Paths are relative
// to the ESP root; texts are file contents.
struct EspState {
  std::map<std::string, std::string> xen_entries;  // "loader/entries/xen-*.conf" -> text
  std::vector<std::string> xen_images;             // "EFI/xen/..." files
  std::vector<std::string> legacy_images;          // "EFI/nixos/xen-*.efi" left by the script
  std::optional<std::string> loader_conf;          // "loader/loader.conf" text
};

}  // namespace xbb
