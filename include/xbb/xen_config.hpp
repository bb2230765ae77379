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
// Throws Error naming the field when a value contains a newline, carriage
// return or NUL, or the section name is not [A-Za-z0-9_.-]+.
std::string render_xen_config(const XenConfig& config);

// The sections and keys of a configuration, for `verify` and `inspect`.
struct ParsedXenConfig {
  struct Section {
    std::string name;
    std::vector<std::pair<std::string, std::string>> keys;  // in file order
  };
  std::optional<std::string> default_section;  // [global] default=
  std::vector<Section> sections;               // [global] excluded
};

// Parses configuration text the way Xen's EFI loader reads it. Throws Error
// naming `origin` and the line for text Xen would not accept.
ParsedXenConfig parse_xen_config(std::string_view text, const std::string& origin);

// An absolute ESP path from a loader entry ("/EFI/nixos/a-bzImage.efi") as a
// file name Xen's loader can open from an image in EFI/xen/
// ("\EFI\nixos\a-bzImage.efi"). Throws Error for relative paths and for paths
// with "." or ".." components.
std::string xen_file_name(std::string_view esp_path);

}  // namespace xbb
