#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

// Xen's EFI configuration (xen.cfg, or the .config section of a unified image):
// how we write it, how Xen reads it, and whether Xen can boot what it names.
// `build` and `verify` both judge a configuration through this module, so
// what verify would call not bootable, build refuses to write.
namespace xbb {

// A configuration with one section, which [global] names as the default.
struct XenConfig {
  std::string section;                     // section name, e.g. "nixos"
  std::vector<std::string> xen_params;     // options=
  std::string kernel;                      // kernel= file, as Xen opens it
  std::vector<std::string> kernel_params;  // after the kernel file on kernel=
  std::optional<std::string> ramdisk;      // ramdisk= file
};

// Renders the configuration text:
//   <marker
//   line>\n[global]\ndefault=<section>\n\n[<section>]\noptions=...\nkernel=...\nramdisk=...\n
// The first line is layout::kMarker (a comment for Xen). options= is the Xen
// parameters joined by one space (the line is omitted when there are none),
// kernel= is the kernel file followed by each kernel parameter after one
// space, and ramdisk= is omitted when absent.
// Throws Error naming the field (`section`, `options[<index>]`, `kernel`,
// `kernel params[<index>]`, `ramdisk`) for a value Xen would not read back as
// written: a byte outside printable ASCII (Xen ends a line at a control
// character and reads ASCII only) or a `#` (Xen starts a comment there
// anywhere on a line); for an empty kernel file or ramdisk, or one with a
// blank (Xen splits the kernel= line at the first blank); and for a section
// name that is not [A-Za-z0-9_.-]+.
std::string render_xen_config(const XenConfig& config);

// The sections and keys of a configuration, for `verify` and `inspect`.
struct ParsedXenConfig {
  struct Section {
    std::string name;
    std::vector<std::pair<std::string, std::string>> keys;  // in file order
  };
  std::optional<std::string> default_section;  // [global] default=
  std::vector<Section> sections;               // [global] excluded

  // The first value of `key` in the default section (Xen takes the first);
  // nullopt when the key or the section is absent.
  std::optional<std::string> default_value(const std::string& key) const;
};

// Parses configuration text the way Xen's EFI loader reads it: lines end at
// LF (a CR before it dropped); blanks at either end of a line are ignored; a
// `#` anywhere, or a `;` at the start of a line, starts a comment; a
// `[name]` line starts a section; `key=value` lines give values (the key is
// everything before the first `=`, the value has its leading blanks
// dropped); blank lines are ignored. Keys of [global] other than default= are
// not kept. Throws Error naming `origin` and the line for text Xen would read
// differently from how it looks, or not at all: a byte outside ASCII, a
// control character inside a line (Xen ends the line there), a section header
// without `]`, with text after it or an empty name, a key outside any
// section, a line without `=`, and an empty key or one ending in a blank
// (Xen would not find it).
ParsedXenConfig parse_xen_config(std::string_view text, const std::string& origin);

// An absolute ESP path from a loader entry ("/EFI/nixos/a-bzImage.efi") as a
// file name Xen's loader can open from an image in EFI/xen/
// ("\EFI\nixos\a-bzImage.efi"). Throws Error for relative paths, paths with
// empty, "." or ".." components, backslashes, blanks, `#`, and characters
// outside printable ASCII.
std::string xen_file_name(std::string_view esp_path);

// A file name from a Xen configuration ("\EFI\nixos\k.efi", or relative to
// the image's folder like "..\nixos\k.efi") as an ESP path
// ("EFI/nixos/k.efi"). Throws Error for a name that leaves the ESP or names
// no file.
std::string esp_path_of_xen_file(const std::string& name, const std::string& image_folder);

// Where Xen looks for what a configuration names.
struct BootFiles {
  std::string image_path;         // the image's ESP path; names resolve from its folder
  bool kernel_embedded = false;   // the image carries a .kernel section
  bool ramdisk_embedded = false;  // the image carries a .ramdisk section
  // Whether a regular file exists at an ESP path ("EFI/nixos/k.efi").
  std::function<bool(const std::string&)> is_file;
};

// Why Xen could not boot the default section of `config`, one line each:
// no [global] default=, a default naming a missing section, no kernel=, or a
// kernel or ramdisk that is neither embedded nor a regular file on the ESP.
// Empty when it can.
std::vector<std::string> boot_problems(const ParsedXenConfig& config, const BootFiles& files);

}  // namespace xbb
