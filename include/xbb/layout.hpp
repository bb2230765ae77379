#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "xbb/loader_entry.hpp"

// Where the tool's files live on the ESP, how they are named, which files an
// entry owns, how Xen finds an entry's configuration, and how a run tells its
// own files from files it did not write. The planner, the ESP state reader,
// the builder, `apply` and `verify` take their paths from here.
namespace xbb::layout {

inline constexpr std::string_view kEntriesFolder = "loader/entries";
inline constexpr std::string_view kImageFolder = "EFI/xen";
inline constexpr std::string_view kLoaderConf = "loader/loader.conf";
// Type #2 entries (unified kernel images, as Lanzaboote writes): never
// written by the tool, but systemd-boot's default may select one.
inline constexpr std::string_view kUnifiedKernelFolder = "EFI/Linux";
// Where the shell script the tool replaces put its images (EFI/nixos/xen-*.efi).
inline constexpr std::string_view kLegacyImageFolder = "EFI/nixos";
// What the tool records of the images it wrote, so that a run with nothing to
// change needs to read none of them (see record.hpp).
inline constexpr std::string_view kStateFile = "EFI/xen/xen-boot-builder.json";

// The two roles a partition plays (esp.hpp's Partitions opens them). The
// ESP holds loader.conf, which systemd-boot reads nowhere else. The boot
// partition holds everything else the tool reads and writes: the source
// entries and the kernels they name, the Xen entries, images and
// configurations, and the record (Xen reads its files from the partition it
// was started from). It is the XBOOTLDR partition when there is one, else
// the ESP.
enum class Partition { esp, boot };

// A file or folder on a partition: which one, and its path there.
struct Place {
  Partition partition;
  std::string_view path;
};

// Where each of the tool's files and folders lives.
inline constexpr Place kEntries{Partition::boot, kEntriesFolder};
inline constexpr Place kImages{Partition::boot, kImageFolder};
inline constexpr Place kRecord{Partition::boot, kStateFile};
inline constexpr Place kLoaderConfPlace{Partition::esp, kLoaderConf};

// How the hypervisor images are laid out.
enum class Kind {
  // One image per entry: xen.efi with its configuration embedded as .config
  // (EFI/xen/xen-<rest>.efi). What Secure Boot needs.
  unified,
  // One image per distinct xen.efi (EFI/xen/xen-<version>-<digest>.efi,
  // without .config) and one configuration file per entry beside it
  // (EFI/xen/xen-<rest>.cfg), which the entry selects with
  // `options <image name> -cfg=<file>`.
  shared,
  // One image per entry that carries everything it boots: .config, and
  // dom0's kernel and initrd (and microcode when given) as .kernel, .ramdisk
  // and .ucode; its configuration names no file. What a signed image needs
  // under Secure Boot, since Xen verifies no file it reads.
  self_contained,
};

// "unified", "shared", "self-contained".
std::optional<Kind> parse_kind(std::string_view name);
const char* kind_name(Kind kind);

// What a layout kind means for one entry's image, in one place: the planner,
// the builder and main ask this instead of comparing kinds.
struct Policy {
  Kind kind;
  bool embeds_config;  // the image carries the entry's configuration as .config
  bool embeds_kernel;  // ... and dom0's kernel, initrd and microcode
  // The image can be signed: it carries everything that decides what boots
  // (a shared image's configuration is a separate file nothing verifies).
  bool signable;
  // The image is one copy of xen.efi that every entry with that xen.efi
  // shares: it must carry no .config of its own, which Xen would read
  // instead of the entry's -cfg= file.
  bool shares_image;
};
const Policy& policy(Kind kind);

// What the user asked for with --layout (nullopt: auto, the default), and
// what else decides the kind of an entry's image.
struct Request {
  std::optional<Kind> kind;
  bool signing = false;   // --sign-key: images must be signable
  bool profiles = false;  // --source profiles (Lanzaboote): no kernel on the ESP to point at
};

// The kind an entry gets, and why (for `plan`, `list` and debug).
struct Choice {
  Kind kind;
  std::string reason;
};

// --layout KIND gives KIND. Auto gives: self-contained when signing or with
// generations from the profiles; unified for a xen.efi that carries a
// .config of its own (a shared image would boot that instead of the
// entry's); shared otherwise, one image per Xen build.
Choice choose(const Request& request, bool xen_has_config);

// Whether some entry may get a shared image under `request`: only then is
// the digest of xen.efi's shared copy worth computing.
bool may_share(const Request& request);
// Whether entries embed dom0's kernel and initrd under `request` (the same
// for every xen.efi): only then are they prepared.
bool embeds_kernel(const Request& request);

// The first line of every text the tool writes (loader entries and Xen
// configurations, a comment in both formats). A run removes only files that
// carry it (or, for shared images, whose name holds their content's digest),
// and those the shell script wrote; anything else in its folders was made by
// hand and is left alone.
inline constexpr std::string_view kMarker =
    "# Written by xen-boot-builder, which rewrites or removes this file; do not edit.";

// Whether `text` (an entry or a configuration) starts with kMarker.
bool is_marked(std::string_view text);

// The longest `<rest>` of a source entry nixos-<rest>.conf the tool mirrors:
// every file name it derives from it (xen-<rest>+<tries>.conf and the
// temporaries of each file, "<name>.xbb-tmp-<16 hex digits>") must fit the
// 255 bytes a FAT file name may have.
inline constexpr std::size_t kMaxRestLength = 255 - 4 - 11 - 5 - 25;

// "xen-<rest>": the stem of the Xen entry (and of its unified image or
// configuration file) made from nixos-<rest>. nullopt, with the reason in
// `why`, when <rest> cannot be mirrored: empty, longer than kMaxRestLength,
// or with characters outside [A-Za-z0-9+_.-].
std::optional<std::string> xen_stem(std::string_view rest, std::string& why);

// "loader/entries/<stem>[+<tries>].conf": a counted entry starts with all
// the tries of the source's counter.
std::string entry_path(const std::string& stem, const std::optional<BootCounter>& counter);

// The length of the digest in a shared image's name (hex digits of SHA-256).
inline constexpr std::size_t kDigestLength = 8;

// The files one Xen entry uses, and the options line that selects them.
struct EntryFiles {
  std::string image;                   // "EFI/xen/..."
  std::optional<std::string> config;   // shared: "EFI/xen/<stem>.cfg"
  std::optional<std::string> options;  // shared: "<image name> -cfg=<stem>.cfg"
};

// Unified and self-contained: {EFI/xen/<stem>.efi}. Shared: the image named by `version` (left
// out when empty or not made of file name characters) and the first
// kDigestLength hex digits of the SHA-256 of its bytes, `shared_digest`, plus
// EFI/xen/<stem>.cfg.
EntryFiles entry_files(Kind kind, const std::string& stem, const std::string& version,
                       const std::string& shared_digest);

// Whether an EFI/xen file name is a shared image's, and then the digest
// prefix its name carries.
std::optional<std::string> shared_image_digest(std::string_view name);

// Where Xen finds the configuration of an entry: the image's embedded
// .config when it has one; else the file named by -cfg=<file> (or -cfg
// <file>) in the entry's options, whose first word Xen skips as the image
// name; else <image name>.cfg beside the image, trying shorter names cut at
// '.', '-' and '_' ("xen-4.2.efi": xen-4.2.cfg, xen-4.cfg, xen.cfg). Paths
// are ESP paths.
struct ConfigLookup {
  std::optional<std::string> file;      // -cfg= given: the one file Xen opens
  std::vector<std::string> candidates;  // otherwise, the files Xen tries, in order
};
ConfigLookup config_lookup(const std::string& image_path,
                           const std::optional<std::string>& options);

// The ESP paths an existing entry uses (its image, and its -cfg= file): what
// stays while the entry stays.
std::vector<std::string> files_of(const LoaderEntry& entry);

}  // namespace xbb::layout
