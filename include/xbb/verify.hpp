#pragma once

#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

// `verify`: is every Xen entry on the ESP bootable. The judgement is a pure
// function of a snapshot of the ESP, with the rules `build` applies
// (xen_config.hpp's boot_problems), so that what build writes verify accepts.
namespace xbb {

class Esp;
class Signer;

// What verify reads of the ESP. Paths are relative to its root.
struct EspSnapshot {
  // One image named by an entry's efi line.
  struct Image {
    std::string problem;                // why it is not a PE32+ EFI application ("" when it is)
    std::optional<std::string> config;  // its .config section
    bool kernel = false;                // it carries a .kernel section
    bool ramdisk = false;               // it carries a .ramdisk section
    // Why its signature does not check out, when signatures are checked.
    std::string signature_problem;
  };
  // loader/entries/*.conf: file name -> text, or the reason it could not be read.
  std::map<std::string, std::string> entries;
  std::map<std::string, std::string> unreadable_entries;
  // EFI/Linux/*.efi: Type #2 entries (Lanzaboote's), by file name.
  std::vector<std::string> unified_kernels;
  std::map<std::string, Image> images;  // by ESP path ("EFI/xen/x.efi"); absent: missing
  // Configuration files Xen would open for images without .config (-cfg=,
  // or found beside the image), by ESP path.
  std::map<std::string, std::string> config_files;
  std::set<std::string> files;             // regular files the configurations name
  std::optional<std::string> loader_conf;  // loader/loader.conf, when present
  std::string loader_conf_problem;         // why it could not be read
  // What was read past and why (a configuration that does not parse, a
  // name the ESP cannot hold): the checks then say what it costs.
  std::vector<std::string> notes;
};

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

// Reads what verify_snapshot needs: every loader entry, the image each Xen
// entry names (its headers and sections), the files their configurations
// name, and loader.conf. Follows no symlink. With a `checker`, also checks
// each image's signature (`verify --sign-cert`). Throws Error when the folder
// is not an ESP (no loader/ folder).
EspSnapshot read_snapshot(const Esp& esp, const Signer* checker = nullptr);

// Judges every loader/entries/xen-*.conf the way the boot would use it: the
// image it names exists and is a PE32+ EFI application; Xen finds its
// configuration (layout::config_lookup: the embedded .config, else the -cfg=
// file of the entry's options, else a .cfg beside the image) and parses it;
// its default section names a kernel (and ramdisk) present on the ESP or
// embedded. And that loader.conf's default and preferred values, when they
// have one, select an entry.
Verification verify_snapshot(const EspSnapshot& snapshot);

// The same over the ESP and the XBOOTLDR partition, in that order: each
// partition's Xen entries judged by its own files (Xen reads from the
// partition it was started from), loader.conf (the ESP's) by the entries
// of both, as systemd-boot lists them together.
Verification verify_partitions(const std::vector<EspSnapshot>& partitions);

}  // namespace xbb
