#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "xbb/loader_entry.hpp"

// Where the tool's files live on the ESP, how they are named, and how a run
// tells its own files from files it did not write.
namespace xbb::layout {

inline constexpr std::string_view kEntriesFolder = "loader/entries";
inline constexpr std::string_view kImageFolder = "EFI/xen";
inline constexpr std::string_view kLoaderConf = "loader/loader.conf";
// Where the shell script the tool replaces put its images (EFI/nixos/xen-*.efi).
inline constexpr std::string_view kLegacyImageFolder = "EFI/nixos";

// The first line of every text the tool writes (loader entries and Xen
// configurations, a comment in both formats). A run removes only files that
// carry it, or that the shell script wrote; anything else in its folders was
// made by hand and is left alone.
inline constexpr std::string_view kMarker =
    "# Written by xen-boot-builder, which rewrites or removes this file; do not edit.";

// Whether `text` (an entry or a configuration) starts with kMarker.
bool is_marked(std::string_view text);

// The longest `<rest>` of a source entry nixos-<rest>.conf the tool mirrors:
// every file name it derives from it (xen-<rest>+<tries>.conf and the
// temporaries of each file, "<name>.xbb-tmp-<16 hex digits>") must fit the
// 255 bytes a FAT file name may have.
inline constexpr std::size_t kMaxRestLength = 255 - 4 - 11 - 5 - 25;

// "xen-<rest>": the stem of the Xen entry and image made from nixos-<rest>.
// nullopt, with the reason in `why`, when <rest> cannot be mirrored: empty,
// longer than kMaxRestLength, or with characters outside [A-Za-z0-9+_.-].
std::optional<std::string> xen_stem(std::string_view rest, std::string& why);

// "loader/entries/<stem>[+<tries>].conf".
std::string entry_path(const std::string& stem, const std::optional<BootCounter>& counter);
// "EFI/xen/<stem>.efi": the unified image of an entry.
std::string image_path(const std::string& stem);

}  // namespace xbb::layout
