#pragma once

// How large each kind of input may be, and how deeply a JSON document may
// nest. Internal to the library. Every file the tool reads is refused past its
// limit before it is read whole, so that no input can make a run hang or
// take memory without end; each limit is far above what NixOS writes.

#include <cstddef>
#include <cstdint>

namespace xbb::limits {

// boot.json: a few KB per system; a document embeds each specialisation's.
inline constexpr std::uint64_t kBootspecBytes = 1 << 20;
// A JSON value inside another, 128 deep: bootspec documents nest about 5.
inline constexpr std::size_t kJsonDepth = 128;
// A loader entry or loader.conf: a few hundred bytes.
inline constexpr std::uint64_t kLoaderTextBytes = 64 << 10;
// xen.efi: 2.8 MB (Debian's 4.17), 29 MB with debug sections (4.20).
inline constexpr std::uint64_t kXenImageBytes = 256ull << 20;
// A dom0 kernel (about 10 MB) and an initrd (10 to 100 MB) embedded in an image.
inline constexpr std::uint64_t kKernelBytes = 256ull << 20;
inline constexpr std::uint64_t kInitrdBytes = 1ull << 30;
// The record (EFI/xen/xen-boot-builder.json): about 3 KB per entry.
inline constexpr std::uint64_t kRecordTextBytes = 16 << 20;
// An image on the ESP: xen.efi with a kernel and initrd embedded, at most.
inline constexpr std::uint64_t kEspImageBytes = kXenImageBytes + kKernelBytes + kInitrdBytes;

}  // namespace xbb::limits
