#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

// ELF images, read with libelf: Xen's multiboot build (`xen.gz` in Debian,
// `multibootPath` in the bootspec), shown by `inspect` but never usable as the
// EFI image. Debian ships it gzip-compressed; gunzip() undoes that with zlib.
namespace xbb::elf {

struct Section {
  std::string name;
  std::uint32_t type = 0;   // SHT_*
  std::uint64_t flags = 0;  // SHF_*
  std::uint64_t address = 0;
  std::uint64_t offset = 0;
  std::uint64_t size = 0;
};

struct Image {
  int elf_class = 0;          // 32 or 64
  std::uint16_t machine = 0;  // EM_*
  std::uint64_t entry = 0;
  std::vector<Section> sections;  // in section header order, the null section left out
  std::string build_id;           // GNU build id (NT_GNU_BUILD_ID) as lowercase hex, empty if none
};

// The file starts with the ELF magic.
bool is_elf(std::span<const std::uint8_t> file);
// The file starts with the gzip magic.
bool is_gzip(std::span<const std::uint8_t> file);

// The decompressed contents of a gzip file (all members). Throws xbb::Error
// naming the byte offset for corrupt or truncated input, and refuses output
// larger than `limit` bytes.
std::vector<std::uint8_t> gunzip(std::span<const std::uint8_t> file,
                                 std::uint64_t limit = 1ull << 30);

// A Multiboot header: what lets GRUB and other loaders boot an image as a
// kernel (Xen's ELF build carries one of each version).
struct MultibootHeader {
  int version = 0;           // 1 or 2
  std::uint64_t offset = 0;  // in the (uncompressed) file
};

// The first valid Multiboot 1 and Multiboot 2 headers of `file`, in that
// order. Multiboot 1 (GNU Multiboot Specification 0.6.96, 3.1): magic
// 0x1BADB002, 32-bit aligned, within the first 8192 bytes, magic + flags +
// checksum = 0 mod 2^32. Multiboot 2 (Multiboot2 Specification, 3.1): magic
// 0xE85250D6, 64-bit aligned, within the first 32768 bytes, magic +
// architecture + header_length + checksum = 0 mod 2^32. "Within" means the
// magic fields (12 and 16 bytes), as GRUB checks (grub-file agrees).
std::vector<MultibootHeader> find_multiboot_headers(std::span<const std::uint8_t> file);

// Parses an (uncompressed) ELF file. Throws xbb::Error with libelf's reason
// when it is not a readable ELF file.
Image parse(std::span<const std::uint8_t> file);

}  // namespace xbb::elf
