#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace xbb {

// The Xen bootspec extension: org.xenproject.bootspec.v2 when present, else v1.
struct XenExtension {
  int schema = 0;  // 2 for org.xenproject.bootspec.v2, 1 for v1
  std::string efi_path;
  std::vector<std::string> params;
  std::optional<std::string> multiboot_path;  // v2 only
  std::optional<std::string> version;         // v2 only
};

// One bootspec document (NixOS RFC 0125, boot.json) with the extensions we use.
struct Bootspec {
  // org.nixos.bootspec.v1
  std::string system;
  std::string init;
  std::string kernel;
  std::vector<std::string> kernel_params;
  std::string label;
  std::string toplevel;
  std::optional<std::string> initrd;
  std::optional<std::string> initrd_secrets;
  // org.nixos.systemd-boot
  std::optional<std::string> sort_key;
  std::optional<std::string> devicetree;
  // org.xenproject.bootspec.v2 / v1; absent when the generation has no Xen
  std::optional<XenExtension> xen;
  // org.nixos.specialisation.v1, in the document's key order
  std::vector<std::pair<std::string, Bootspec>> specialisations;
};

// Parses the text of a boot.json. Throws Error naming `origin` and the field
// (e.g. `.../boot.json: org.xenproject.bootspec.v2.params[1]: contains a
// newline`) for invalid JSON, missing or mistyped required fields, string
// values holding a newline, carriage return or NUL, and store paths that are
// not absolute or contain a `..` component.
Bootspec parse_bootspec(std::string_view json_text, const std::string& origin);

}  // namespace xbb
