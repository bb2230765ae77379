#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <variant>
#include <vector>

namespace xbb {

// A file's size and modification time, as a run saw them: what the record of
// written images is checked against (see record.hpp).
struct FileStamp {
  std::uint64_t size = 0;
  std::int64_t mtime_ns = 0;
  bool operator==(const FileStamp&) const = default;
};

// A file of the host (a store path under --root) and its stamp when the run
// checked it.
struct HostFile {
  // A string, not a std::filesystem::path: a run holds several per
  // generation, and a path keeps each of its components besides.
  std::string path;
  FileStamp stamp;
  // The SHA-256 of its content, for a file made during the run (an initrd
  // with its secrets appended): its identity in a recipe, in place of its
  // path and stamp.
  std::string digest;
};

// A section to add to a Xen image: literal bytes (.config) or the bytes of a
// host file (.kernel, .ramdisk), read when the image is made.
struct SectionSource {
  std::string name;
  std::variant<std::string, HostFile> content;
};

// How an image is made: the host's xen.efi, its DISCARDABLE .debug_*
// sections left out unless asked, plus sections (none for a shared image).
struct ImageRecipe {
  HostFile xen_efi;
  std::vector<SectionSource> sections;
  bool drop_debug_sections = true;
  // Signed by the signer of this identity (Signer::identity()); empty:
  // unsigned. A signed image is padded for signing (pe::padded_for_signing).
  std::string signer;
};

// One file the run writes, by its path relative to the ESP root
// ("EFI/xen/xen-generation-42.efi", "loader/entries/xen-generation-42.conf").
struct FileWrite {
  std::string path;
  std::variant<std::string, ImageRecipe> content;
  // For an image that replaces a file: the record hash (RecordHash) of that
  // file's bytes, so
  // that applying compares the new image with it without reading it again
  // (nothing is written when they are equal). Texts are only planned when
  // they differ from what is there.
  std::optional<std::string> replaces_digest;
};

// What `info` reports: +name added, -name removed, ~name changed (detail says
// which fields).
struct Change {
  char kind = '+';
  std::string name;
  std::string detail;
};

// What an image on the ESP is made of, for the record a run keeps of them.
struct ImageOrigin {
  std::string recipe;  // recipe_id() of its recipe
  std::string config;  // its embedded .config ("" for a shared image)
};

// Everything a run will do to the ESP, in the order it must be done: images
// and configuration files, then entries, then loader.conf, then removals.
struct Plan {
  std::vector<FileWrite> images;  // images and the configuration files entries name
  std::vector<FileWrite> entries;
  std::optional<std::string> loader_conf;  // new text; nullopt leaves the file alone
  std::vector<std::string> removals;       // ESP-relative paths of stale files
  std::vector<Change> changes;
  // Every image of ours the ESP holds after the run, with its origin.
  std::map<std::string, ImageOrigin> images_after;
  // Every entry and configuration file the run's targets keep, with its text
  // (written by the run or already there).
  std::map<std::string, std::string> texts_after;
};

// A file in one of the tool's folders as a run finds it.
struct ExistingFile {
  // An entry's or configuration file's text; for an image, its embedded
  // .config ("" when it has none, or was not read).
  std::string text;
  // The tool may replace or remove it: its own bytes or name say the tool
  // wrote it (its text carries layout::kMarker, a shared image's name holds
  // its digest; being listed in the record is not enough), or the shell
  // script it replaces did, or it is a symlink (which FAT cannot hold and
  // the tool never follows). Anything else was made by hand and is left
  // alone.
  bool ours = false;
  std::optional<FileStamp> stamp;  // a regular file's size and mtime
  // The record hash (RecordHash in record.hpp) of its bytes (of what was
  // signed, for a signed image), when read or recorded.
  std::optional<std::string> digest;
  // The recipe it was made from, when the record vouches for the file (its
  // stamp is the one recorded, its headers and .config read as recorded):
  // then its body is not read, and it is not rebuilt while the recipe stays
  // the same.
  std::optional<std::string> recipe;
  // The SHA-256 of a shared image's bytes (its name holds a prefix of it),
  // when read or recorded.
  std::optional<std::string> sha256;
};

// What the planner needs to know of the ESP as it is now: one value, read by
// the builder. Paths are relative to the ESP root.
struct EspState {
  std::map<std::string, ExistingFile> xen_entries;  // "loader/entries/xen-*.conf"
  std::map<std::string, ExistingFile> xen_images;   // "EFI/xen/*.efi" and "*.cfg"
  std::vector<std::string> legacy_images;           // "EFI/nixos/xen-*.efi" left by the script
  std::optional<std::string> loader_conf;           // "loader/loader.conf" text, when usable
  std::string loader_conf_problem;                  // why an existing loader.conf is not usable
  std::vector<std::string> notes;                   // what was read past and why, for debug
  std::set<std::string>
      boot_files;  // the source entries' kernels and initrds that are regular files
};

// A recipe's identity: a digest of the xen.efi's path and stamp, the debug
// option, the signer and every section (its text, or its host file's path
// and stamp, or digest when it has one).
// Equal ids mean equal images: store paths do not change in place, and a
// file that did would change its stamp.
std::string recipe_id(const ImageRecipe& recipe);

}  // namespace xbb
