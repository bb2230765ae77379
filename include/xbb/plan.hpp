#pragma once

#include <filesystem>
#include <map>
#include <optional>
#include <set>
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

// A file in one of the tool's folders as a run finds it.
struct ExistingFile {
  // An entry's text; for an image, its embedded .config ("" when it has none
  // or could not be read).
  std::string text;
  // The tool may replace or remove it: written by the tool (its text carries
  // layout::kMarker), by the shell script it replaces, or a symlink (which
  // FAT cannot hold and the tool never follows). Anything else was made by
  // hand and is left alone.
  bool ours = false;
};

// What the planner needs to know of the ESP as it is now: one value, read by
// the builder. Paths are relative to the ESP root.
struct EspState {
  std::map<std::string, ExistingFile> xen_entries;  // "loader/entries/xen-*.conf"
  std::map<std::string, ExistingFile> xen_images;   // "EFI/xen/*.efi" and "*.cfg"
  std::vector<std::string> legacy_images;           // "EFI/nixos/xen-*.efi" left by the script
  std::optional<std::string> loader_conf;           // "loader/loader.conf" text, when usable
  std::string loader_conf_problem;                  // why an existing loader.conf is not usable
  std::set<std::string>
      boot_files;  // the source entries' kernels and initrds that are regular files
};

}  // namespace xbb
