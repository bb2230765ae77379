#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace xbb {

// A Xen EFI configuration file (xen.cfg / the .config section) with one
// section, which [global] names as the default.
struct XenConfig {
  std::string section;                     // section name, e.g. "nixos"
  std::vector<std::string> xen_params;     // options=
  std::string kernel;                      // kernel= file, as Xen opens it
  std::vector<std::string> kernel_params;  // after the kernel file on kernel=
  std::optional<std::string> ramdisk;      // ramdisk= file
};

// Renders the configuration text:
//   [global]\ndefault=<section>\n\n[<section>]\noptions=...\nkernel=...\nramdisk=...\n
// where options= is the Xen parameters joined by one space (the line is
// omitted when there are none), kernel= is the kernel file followed by each
// kernel parameter after one space, and ramdisk= is omitted when absent.
// Throws Error naming the field (`section`, `options[<index>]`, `kernel`,
// `kernel params[<index>]`, `ramdisk`) when a value contains a newline,
// carriage return or NUL, when the kernel file or ramdisk is empty, or when
// the section name is not [A-Za-z0-9_.-]+.
std::string render_xen_config(const XenConfig& config);

// The sections and keys of a configuration, for `verify` and `inspect`.
struct ParsedXenConfig {
  struct Section {
    std::string name;
    std::vector<std::pair<std::string, std::string>> keys;  // in file order
  };
  std::optional<std::string> default_section;  // [global] default=
  std::vector<Section> sections;               // [global] excluded

  // The first value of `key` in the default section; empty when absent.
  std::string default_value(const std::string& key) const;
};

// Parses configuration text the way Xen's EFI loader reads it: LF or CRLF
// lines, spaces and tabs around a line ignored, blank lines, `#` comment
// lines, `[section]` headers and `key=value` lines (split at the first `=`;
// blanks around the key are dropped, the value is kept as written). Keys of
// [global] other than default= are not kept. Throws Error naming `origin` and the line for text Xen would not
// accept: a NUL byte or a byte outside ASCII, a carriage return inside a
// line, an empty or unterminated section header, a key outside any section,
// a line without `=` or with an empty key.
ParsedXenConfig parse_xen_config(std::string_view text, const std::string& origin);

// An absolute ESP path from a loader entry ("/EFI/nixos/a-bzImage.efi") as a
// file name Xen's loader can open from an image in EFI/xen/
// ("\EFI\nixos\a-bzImage.efi"). Throws Error for relative paths, paths with
// empty, "." or ".." components, backslashes, and characters outside
// printable ASCII.
std::string xen_file_name(std::string_view esp_path);

}  // namespace xbb
