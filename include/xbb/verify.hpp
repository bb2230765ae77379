#pragma once

#include <string>
#include <vector>

namespace xbb {

class Esp;

// What `verify` found wrong with one Xen entry (nothing: it is bootable).
struct EntryCheck {
  std::string entry;  // file name in loader/entries
  std::vector<std::string> problems;
};

struct Verification {
  std::vector<EntryCheck> entries;
  std::vector<std::string> loader_conf_problems;

  bool ok() const;
};

// Checks every loader/entries/xen-*.conf the way the boot would use it: the
// image it names exists and is a PE32+ image with a parseable .config whose
// default section names a kernel (and ramdisk) present on the ESP or embedded
// as .kernel (.ramdisk); and that loader.conf's default and preferred entries
// exist. Reads only; follows no symlink.
Verification verify_esp(const Esp& esp);

// A file name from a Xen configuration ("\EFI\nixos\k.efi", or relative to
// the image's folder like "..\nixos\k.efi") as an ESP path ("EFI/nixos/k.efi").
// Throws Error for a name that leaves the ESP.
std::string esp_path_of_xen_file(const std::string& name, const std::string& image_folder);

}  // namespace xbb
