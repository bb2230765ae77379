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

// Parses an (uncompressed) ELF file. Throws xbb::Error with libelf's reason
// when it is not a readable ELF file.
Image parse(std::span<const std::uint8_t> file);

}  // namespace xbb::elf
