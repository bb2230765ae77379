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
  // Defined out of line: Bootspec holds pairs of itself, and clang (with
  // libstdc++) cannot instantiate the implicit members while it is incomplete.
  Bootspec();
  Bootspec(const Bootspec&);
  Bootspec(Bootspec&&) noexcept;
  Bootspec& operator=(const Bootspec&);
  Bootspec& operator=(Bootspec&&) noexcept;
  ~Bootspec();

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
  // org.nix-community.lanzaboote sort_key, read only when it is a string
  // without control characters (nothing else in that extension matters
  // here). When the extension gives one that cannot be used, or is not an
  // object, why (a one-line message naming the file and field); the document
  // is read all the same.
  std::optional<std::string> lanzaboote_sort_key;
  std::optional<std::string> lanzaboote_sort_key_problem;
  std::optional<std::string> devicetree;
  // org.xenproject.bootspec.v2 / v1; absent when the generation has no Xen
  std::optional<XenExtension> xen;
  // org.nixos.specialisation.v1, in the document's key order. A missing key
  // counts as {}. The specialisations of a specialisation are not read (the
  // RFC leaves nesting undefined); each entry's own `specialisations` and
  // `broken_specialisations` are therefore always empty.
  std::vector<std::pair<std::string, Bootspec>> specialisations;
  // Specialisations that failed to parse, in the document's key order: name
  // -> the full one-line message of the Error (origin and field path, e.g.
  // `.../boot.json: org.nixos.specialisation.v1.debug.org.nixos.bootspec.v1.kernel: missing`).
  // A broken specialisation does not make its parent fail (an
  // org.nixos.specialisation.v1 that is not an object does). A name holding a
  // newline, carriage return or NUL is itself an error; such an entry's name
  // is given JSON-escaped and quoted (e.g. `"a\nb"`) so that it prints on one line.
  std::vector<std::pair<std::string, std::string>> broken_specialisations;
};

// Parses the text of a boot.json. Throws Error naming `origin` and the field
// (e.g. `.../boot.json: org.xenproject.bootspec.v2.params[1]: contains a
// newline`) for invalid JSON, missing or mistyped required fields (an
// optional field given as null counts as mistyped), array items that are not
// strings (named by index), string values holding a newline, carriage return
// or NUL, and store paths (init, kernel, initrd, initrdSecrets, toplevel,
// devicetree, the Xen efiPath/xen and multibootPath) that are not absolute or
// have a `.` or `..` component.
//
// Xen: org.xenproject.bootspec.v2 (efiPath and params required, multibootPath
// and version optional) is read when present, and v1 is then ignored.
// Otherwise org.xenproject.bootspec.v1 is read: `xen` (or, from older
// releases, `efiPath` when `xen` is missing) and `xenParams`, both required.
// Unknown top-level keys and unknown keys inside the extensions are ignored.
Bootspec parse_bootspec(std::string_view json_text, const std::string& origin);

}  // namespace xbb
