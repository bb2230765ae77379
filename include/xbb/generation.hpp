#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "xbb/bootspec.hpp"
#include "xbb/loader_entry.hpp"
#include "xbb/plan.hpp"

namespace xbb {

class Esp;

// What a run learnt of a toplevel's bootspec, which the record keeps so that
// a later run neither reads nor resolves it again. A store path does not
// change in place: while `file` is there with the stamp recorded, it holds
// `document`.
struct KnownBootspec {
  std::string file;  // its boot.json on the host (under --root), resolved
  FileStamp stamp;
  // As kept (see bootspec_document.hpp); shared by the copies a run makes.
  std::shared_ptr<const std::string> document;
  // Read from `document`; only in the record read (a generation has it as
  // its bootspec, and holds none here: a pointer takes a fraction of a
  // Bootspec's room in each).
  std::shared_ptr<const Bootspec> spec;
  // The host files the bootspec names, resolved under --root ("" when none;
  // strings, which take a fraction of a path's memory).
  std::string xen_efi;
  std::string kernel;
  std::optional<std::string> initrd;

  // The same record entry (`spec` is read from `document`).
  bool operator==(const KnownBootspec& other) const {
    return file == other.file && stamp == other.stamp && *document == *other.document &&
           xen_efi == other.xen_efi && kernel == other.kernel && initrd == other.initrd;
  }
};

// Known bootspecs by toplevel ("/nix/store/...-nixos-system-...").
using KnownBootspecs = std::map<std::string, KnownBootspec>;

// One bootable NixOS system, as systemd-boot shows it: a generation, or one
// of its specialisations, of some profile.
struct Generation {
  // The part after "nixos-" of the source entry's stem ("generation-42",
  // "generation-42-specialisation-debug", "<sha256 hex>"). The Xen entry and
  // image are named "xen-<rest>".
  std::string rest;
  std::optional<BootCounter> counter;  // the source entry's boot counter
  std::string source;                  // where it was found, for messages
  std::optional<unsigned> number;      // generation number, when known
  LoaderEntry entry;                   // the source entry (synthesised for profiles)
  // Host files (under --root) of the generation's xen.efi, and of the
  // kernel and initrd a self-contained image embeds. Their stamps are set
  // when the builder checks them; an initrd with secrets is replaced by the
  // builder's private copy with the secrets appended.
  HostFile xen_efi;
  HostFile kernel_file;
  std::optional<HostFile> initrd_file;
  // What the builder found of the xen.efi: whether it carries a .config
  // (then it cannot serve the shared layout), and the SHA-256 of the copy
  // the shared layout writes (set only for that layout).
  bool xen_has_config = false;
  std::string shared_digest;
  std::optional<Bootspec> bootspec;  // absent when it could not be read
  std::string problem;               // why bootspec is absent
  // The toplevel and what was learnt of its bootspec (from the record or
  // read), for the next run; absent for a profile link. Set once, never
  // changed: held by pointer, a fraction of its size in each generation.
  std::shared_ptr<const std::pair<std::string, KnownBootspec>> known;
};

// Where generations come from.
enum class Source { entries, profiles };

// A path as seen by the NixOS system whose store lives under `root`:
// "/nix/store/x" with root "/mnt" is "/mnt/nix/store/x". Symlinks on the way
// are followed with absolute targets taken relative to `root` too.
std::filesystem::path host_path(const std::filesystem::path& root, const std::string& path);

// host_path for many paths under one root, each resolved once (a run names
// the same xen.efi and kernel for many generations). A path with no symlink
// and no ".." on the way is found so in one openat2(RESOLVE_IN_ROOT |
// RESOLVE_NO_SYMLINKS) call rather than a stat per component; any other (a
// symlink to follow, a missing file, a kernel or a seccomp filter without
// openat2) is resolved as host_path does. The answer is host_path's.
class HostPaths {
 public:
  // `walk`: never openat2, as where the call is missing.
  enum class Lookup { openat2_first, walk };
  explicit HostPaths(std::filesystem::path root, Lookup lookup = Lookup::openat2_first);
  HostPaths(const HostPaths&) = delete;
  HostPaths& operator=(const HostPaths&) = delete;
  ~HostPaths();

  std::filesystem::path resolve(const std::string& path);
  const std::filesystem::path& root() const { return root_; }

 private:
  std::optional<std::filesystem::path> without_symlinks(const std::string& path);

  std::filesystem::path root_;
  int root_fd_ = -1;  // -1: openat2 is not tried
  std::map<std::string, std::filesystem::path> known_;
};

// Generations from systemd-boot's NixOS entries, loader/entries/nixos-*.conf
// (both naming schemes), in file name order. A missing or broken bootspec
// gives a Generation with `problem` set. A bootspec in `known` (the record's)
// whose file still has the stamp recorded is not read again: one stat.
std::vector<Generation> generations_from_entries(const Esp& esp, const std::filesystem::path& root,
                                                 const KnownBootspecs& known = {});

// Generations from the system profiles (Lanzaboote: no entries on the ESP):
// nix/var/nix/profiles/system-<N>-link and system-profiles/<p>-<N>-link,
// and the specialisations of each.
std::vector<Generation> generations_from_profiles(const std::filesystem::path& root);

// The ESP files (paths relative to its root) the generations' source entries
// name as kernels and initrds, each once: only ESP paths ("/EFI/nixos/k.efi"
// gives "EFI/nixos/k.efi"); anything else names no file there.
std::set<std::string> files_named_on_the_esp(const std::vector<Generation>& generations);

// Generations that would get the same Xen entry and image ("xen-<rest>",
// compared ignoring case as FAT does): nixos-generation-3.conf and
// nixos-generation-3+2-1.conf, or the links system-5-link and system-05-link.
// Of each such group the one systemd-boot's menu lists first stays (see
// boot_menu.hpp; on a tie, the first source by name); the others are removed,
// each with a warning naming both sources. Returns the warnings.
std::vector<std::string> keep_one_per_xen_name(std::vector<Generation>& generations);

}  // namespace xbb
