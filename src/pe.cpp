#include "xbb/pe.hpp"

#include <algorithm>
#include <array>
#include <cstring>
#include <numeric>
#include <set>

#include "hex.hpp"
#include "xbb/error.hpp"

namespace xbb::pe {
namespace {

// Sizes and offsets from the PE/COFF specification.
constexpr std::uint64_t kDosHeaderSize = 0x40;
constexpr std::uint64_t kLfanewOffset = 0x3c;
constexpr std::uint64_t kCoffHeaderSize = 20;
constexpr std::uint64_t kOptionalHeaderFixedSize = 112;  // PE32+, before the data directories
constexpr std::uint64_t kDataDirectorySize = 8;
constexpr std::uint64_t kSectionHeaderSize = 40;
constexpr std::uint64_t kSymbolSize = 18;
constexpr std::uint64_t kDebugEntrySize = 28;
constexpr std::uint64_t kShortNameSize = 8;
constexpr std::uint16_t kMagicPe32 = 0x10b;
constexpr std::uint16_t kMagicPe32Plus = 0x20b;

// Field offsets inside the COFF file header.
constexpr std::uint64_t kCoffNumberOfSections = 2;
constexpr std::uint64_t kCoffPointerToSymbolTable = 8;
// Field offsets inside the PE32+ optional header.
constexpr std::uint64_t kOptSizeOfInitializedData = 8;
constexpr std::uint64_t kOptSizeOfImage = 56;
constexpr std::uint64_t kOptSizeOfHeaders = 60;
constexpr std::uint64_t kOptCheckSum = 64;
constexpr std::uint64_t kOptSubsystem = 68;
// Field offsets inside a section header and a debug directory entry.
constexpr std::uint64_t kSecPointerToRawData = 20;
constexpr std::uint64_t kSecPointerToRelocations = 24;
constexpr std::uint64_t kSecPointerToLinenumbers = 28;
constexpr std::uint64_t kDebugPointerToRawData = 24;

std::string at(std::uint64_t offset) { return "offset " + hex(offset) + ": "; }

std::uint64_t align_up(std::uint64_t value, std::uint64_t alignment) {
  return (value + alignment - 1) / alignment * alignment;
}

bool is_power_of_two(std::uint32_t value) { return value != 0 && (value & (value - 1)) == 0; }

std::uint16_t load16(const std::uint8_t* p) { return static_cast<std::uint16_t>(p[0] | p[1] << 8); }
std::uint32_t load32(const std::uint8_t* p) {
  return static_cast<std::uint32_t>(load16(p)) | static_cast<std::uint32_t>(load16(p + 2)) << 16;
}
std::uint64_t load64(const std::uint8_t* p) {
  return static_cast<std::uint64_t>(load32(p)) | static_cast<std::uint64_t>(load32(p + 4)) << 32;
}
void store16(std::uint8_t* p, std::uint16_t value) {
  p[0] = static_cast<std::uint8_t>(value);
  p[1] = static_cast<std::uint8_t>(value >> 8);
}
void store32(std::uint8_t* p, std::uint32_t value) {
  store16(p, static_cast<std::uint16_t>(value));
  store16(p + 2, static_cast<std::uint16_t>(value >> 16));
}

// Bounds-checked little-endian reads; a read past the end names the field.
class Reader {
 public:
  // `file` is the whole file, or its first bytes when `file_size` is larger.
  Reader(std::span<const std::uint8_t> file, std::uint64_t file_size)
      : file_(file), whole_(file.size() >= file_size) {}
  explicit Reader(std::span<const std::uint8_t> file) : Reader(file, file.size()) {}

  // `what` names the bytes in the error when they are not there.
  void need(std::uint64_t offset, std::uint64_t size, std::string_view what) const {
    if (offset > file_.size() || size > file_.size() - offset) {
      throw Error(at(offset) + std::string(what) + " (" + hex(size) + " bytes) extends past " +
                  (whole_ ? "the end of the file (" + hex(file_.size()) + " bytes)"
                          : "the first " + hex(file_.size()) +
                                " bytes of the file (read to check its headers)"));
    }
  }
  std::uint16_t u16(std::uint64_t offset, std::string_view what) const {
    need(offset, 2, what);
    return load16(file_.data() + offset);
  }
  std::uint32_t u32(std::uint64_t offset, std::string_view what) const {
    need(offset, 4, what);
    return load32(file_.data() + offset);
  }
  std::uint64_t u64(std::uint64_t offset, std::string_view what) const {
    need(offset, 8, what);
    return load64(file_.data() + offset);
  }

 private:
  std::span<const std::uint8_t> file_;
  bool whole_;  // the whole file, not its first bytes
};

std::uint64_t memory_extent(const Section& section) {
  return section.virtual_size != 0 ? section.virtual_size : section.size_of_raw_data;
}

std::uint64_t memory_end(const Section& section) {
  return std::uint64_t{section.virtual_address} + memory_extent(section);
}

std::uint64_t raw_end(const Section& section) {
  return std::uint64_t{section.pointer_to_raw_data} + section.size_of_raw_data;
}

std::string describe(const Section& section, std::size_t index) {
  return "section " + std::to_string(index) + " (" + section.name + ")";
}

void refuse_other_formats(std::span<const std::uint8_t> file) {
  static constexpr std::uint8_t kElfMagic[] = {0x7f, 'E', 'L', 'F'};
  static constexpr std::uint8_t kGzipMagic[] = {0x1f, 0x8b};
  if (file.size() >= sizeof kElfMagic &&
      std::equal(std::begin(kElfMagic), std::end(kElfMagic), file.begin())) {
    throw Error("this is an ELF multiboot image; the bootspec must point at xen.efi");
  }
  if (file.size() >= sizeof kGzipMagic &&
      std::equal(std::begin(kGzipMagic), std::end(kGzipMagic), file.begin())) {
    throw Error(
        "this is a gzip-compressed file (like Xen's multiboot build xen.gz), not a PE image; the "
        "bootspec must point at xen.efi");
  }
}

std::string section_name(const Reader& reader, std::span<const std::uint8_t> file,
                         const Image& image, std::uint64_t header_offset) {
  reader.need(header_offset, kShortNameSize, "section name");
  const char* raw = reinterpret_cast<const char*>(file.data() + header_offset);
  std::string name(raw, strnlen(raw, kShortNameSize));
  if (name.empty() || name[0] != '/') return name;

  const std::string digits = name.substr(1);
  if (digits.empty() ||
      !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    throw Error(at(header_offset) + "section name \"" + name +
                "\" is neither a name nor a string table offset");
  }
  if (image.pointer_to_symbol_table == 0) {
    throw Error(at(header_offset) + "section name \"" + name +
                "\" refers to a COFF string table the image lacks");
  }
  const std::uint64_t index = std::stoull(digits);
  if (index < 4 || index >= image.string_table_size) {
    throw Error(at(header_offset) + "section name \"" + name +
                "\" points outside the COFF string table (" + hex(image.string_table_size) +
                " bytes)");
  }
  const std::uint64_t table =
      std::uint64_t{image.pointer_to_symbol_table} + kSymbolSize * image.number_of_symbols;
  const char* start = reinterpret_cast<const char*>(file.data() + table + index);
  const std::uint64_t room = image.string_table_size - index;
  const std::size_t length = strnlen(start, room);
  if (length == room) {
    throw Error(at(table + index) + "long section name \"" + name +
                "\" is not NUL-terminated in the string table");
  }
  return std::string(start, length);
}

void read_symbol_table(const Reader& reader, Image& image) {
  if (image.pointer_to_symbol_table == 0) return;
  const std::uint64_t symbols = image.pointer_to_symbol_table;
  reader.need(symbols, kSymbolSize * image.number_of_symbols,
              "COFF symbol table (PointerToSymbolTable, NumberOfSymbols " +
                  std::to_string(image.number_of_symbols) + ")");
  const std::uint64_t strings = symbols + kSymbolSize * image.number_of_symbols;
  const std::uint32_t size = reader.u32(strings, "COFF string table size");
  if (size < 4) {
    throw Error(at(strings) + "COFF string table size " + hex(size) +
                " is smaller than its own size field");
  }
  reader.need(strings, size, "COFF string table");
  image.string_table_size = size;
}

void check_section(const Image& image, const Section& section, std::size_t index,
                   std::uint64_t header_offset, std::uint64_t file_size) {
  const auto what = [&] { return describe(section, index); };
  if (section.size_of_raw_data != 0) {
    if (section.pointer_to_raw_data < image.size_of_headers) {
      throw Error(at(header_offset + kSecPointerToRawData) + what() + ": PointerToRawData " +
                  hex(section.pointer_to_raw_data) + " lies inside the headers (SizeOfHeaders " +
                  hex(image.size_of_headers) + ")");
    }
    if (raw_end(section) > file_size) {
      throw Error(at(header_offset + kSecPointerToRawData) + what() + ": raw data " +
                  hex(section.pointer_to_raw_data) + "+" + hex(section.size_of_raw_data) +
                  " extends past the end of the file (" + hex(file_size) + " bytes)");
    }
  }
  if (section.virtual_address < image.size_of_headers) {
    throw Error(at(header_offset) + what() + ": VirtualAddress " + hex(section.virtual_address) +
                " lies inside the headers (SizeOfHeaders " + hex(image.size_of_headers) + ")");
  }
  if (memory_end(section) > image.size_of_image) {
    throw Error(at(header_offset) + what() + ": ends at RVA " + hex(memory_end(section)) +
                ", beyond SizeOfImage " + hex(image.size_of_image));
  }
}

// PE forbids sections that overlap in memory; in the file, overlapping raw
// data would make moving it ambiguous.
void check_no_overlap(const Image& image) {
  const auto& sections = image.sections;
  std::vector<std::size_t> order(sections.size());
  std::iota(order.begin(), order.end(), 0);

  std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    return sections[a].virtual_address < sections[b].virtual_address;
  });
  for (std::size_t i = 1; i < order.size(); ++i) {
    const Section& low = sections[order[i - 1]];
    const Section& high = sections[order[i]];
    if (memory_end(low) > high.virtual_address) {
      throw Error(at(image.section_table_offset + kSectionHeaderSize * order[i]) +
                  describe(high, order[i]) + " at RVA " + hex(high.virtual_address) + " overlaps " +
                  describe(low, order[i - 1]) + " (RVA " + hex(low.virtual_address) + " to " +
                  hex(memory_end(low)) + ")");
    }
  }

  std::erase_if(order, [&](std::size_t i) { return sections[i].size_of_raw_data == 0; });
  std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    return sections[a].pointer_to_raw_data < sections[b].pointer_to_raw_data;
  });
  for (std::size_t i = 1; i < order.size(); ++i) {
    const Section& low = sections[order[i - 1]];
    const Section& high = sections[order[i]];
    if (raw_end(low) > high.pointer_to_raw_data) {
      throw Error(
          at(image.section_table_offset + kSectionHeaderSize * order[i] + kSecPointerToRawData) +
          describe(high, order[i]) + ": raw data at " + hex(high.pointer_to_raw_data) +
          " overlaps " + describe(low, order[i - 1]) + " (file " + hex(low.pointer_to_raw_data) +
          " to " + hex(raw_end(low)) + ")");
    }
  }
}

// The file offset of `size` bytes at `rva`, which must lie in one section's raw data.
std::uint64_t file_offset_of(const Image& image, std::uint32_t rva, std::uint32_t size,
                             const std::string& what) {
  for (const Section& section : image.sections) {
    if (rva >= section.virtual_address &&
        std::uint64_t{rva} + size <=
            std::uint64_t{section.virtual_address} +
                std::min(memory_extent(section), std::uint64_t{section.size_of_raw_data})) {
      return std::uint64_t{section.pointer_to_raw_data} + (rva - section.virtual_address);
    }
  }
  throw Error(what + " at RVA " + hex(rva) + " (" + hex(size) +
              " bytes) is not inside any section's file data");
}

void read_debug_directory(const Reader& reader, Image& image,
                          std::uint64_t directory_entry_offset) {
  if (image.data_directories.size() <= kDirectoryDebug) return;
  const DataDirectory& directory = image.data_directories[kDirectoryDebug];
  if (directory.size == 0) return;
  if (directory.size % kDebugEntrySize != 0) {
    throw Error(at(directory_entry_offset) + "debug directory size " + hex(directory.size) +
                " is not a multiple of the entry size (28 bytes)");
  }
  const std::uint64_t offset = file_offset_of(image, directory.virtual_address, directory.size,
                                              at(directory_entry_offset) + "debug directory");
  image.debug_directory_offset = static_cast<std::uint32_t>(offset);
  for (std::uint64_t entry = offset; entry < offset + directory.size; entry += kDebugEntrySize) {
    DebugEntry debug;
    debug.type = reader.u32(entry + 12, "debug directory entry Type");
    debug.size_of_data = reader.u32(entry + 16, "debug directory entry SizeOfData");
    debug.address_of_raw_data = reader.u32(entry + 20, "debug directory entry AddressOfRawData");
    debug.pointer_to_raw_data =
        reader.u32(entry + kDebugPointerToRawData, "debug directory entry PointerToRawData");
    if (debug.pointer_to_raw_data != 0) {
      reader.need(debug.pointer_to_raw_data, debug.size_of_data,
                  "debug data (directory entry at " + hex(entry) + ")");
    }
    image.debug_entries.push_back(debug);
  }
}

void read_optional_header(const Reader& reader, Image& image, std::uint16_t optional_header_size) {
  const std::uint64_t opt = image.optional_header_offset;
  const std::uint16_t magic = reader.u16(opt, "optional header Magic");
  if (magic == kMagicPe32) {
    throw Error(
        at(opt) +
        "optional header Magic 0x10b: a PE32 (32-bit) image; only PE32+ (64-bit) is supported");
  }
  if (magic != kMagicPe32Plus) {
    throw Error(at(opt) + "optional header Magic " + hex(magic) +
                " is neither PE32+ (0x20b) nor PE32 (0x10b)");
  }
  if (optional_header_size < kOptionalHeaderFixedSize) {
    throw Error(at(image.coff_header_offset + 16) + "SizeOfOptionalHeader " +
                hex(optional_header_size) +
                " is smaller than a PE32+ optional header (0x70 bytes)");
  }
  reader.need(opt, optional_header_size, "optional header (SizeOfOptionalHeader)");
  image.size_of_code = reader.u32(opt + 4, "SizeOfCode");
  image.size_of_initialized_data =
      reader.u32(opt + kOptSizeOfInitializedData, "SizeOfInitializedData");
  image.size_of_uninitialized_data = reader.u32(opt + 12, "SizeOfUninitializedData");
  image.address_of_entry_point = reader.u32(opt + 16, "AddressOfEntryPoint");
  image.image_base = reader.u64(opt + 24, "ImageBase");
  image.section_alignment = reader.u32(opt + 32, "SectionAlignment");
  image.file_alignment = reader.u32(opt + 36, "FileAlignment");
  image.size_of_image = reader.u32(opt + kOptSizeOfImage, "SizeOfImage");
  image.size_of_headers = reader.u32(opt + kOptSizeOfHeaders, "SizeOfHeaders");
  image.checksum = reader.u32(opt + kOptCheckSum, "CheckSum");
  image.subsystem = reader.u16(opt + kOptSubsystem, "Subsystem");

  if (!is_power_of_two(image.file_alignment) || image.file_alignment > 0x10000) {
    throw Error(at(opt + 36) + "FileAlignment " + hex(image.file_alignment) +
                " is not a power of two up to 64 KiB");
  }
  if (!is_power_of_two(image.section_alignment) || image.section_alignment < image.file_alignment) {
    throw Error(at(opt + 32) + "SectionAlignment " + hex(image.section_alignment) +
                " is not a power of two at least FileAlignment " + hex(image.file_alignment));
  }

  const std::uint32_t count = reader.u32(opt + 108, "NumberOfRvaAndSizes");
  if (count > (optional_header_size - kOptionalHeaderFixedSize) / kDataDirectorySize) {
    throw Error(at(opt + 108) + "NumberOfRvaAndSizes " + hex(count) +
                " does not fit in SizeOfOptionalHeader " + hex(optional_header_size));
  }
  for (std::uint32_t i = 0; i < count; ++i) {
    const std::uint64_t entry = opt + kOptionalHeaderFixedSize + kDataDirectorySize * i;
    image.data_directories.push_back(
        {reader.u32(entry, "data directory"), reader.u32(entry + 4, "data directory")});
  }
}

std::uint64_t directory_entry_offset(const Image& image, std::size_t index) {
  return image.optional_header_offset + kOptionalHeaderFixedSize + kDataDirectorySize * index;
}

void check_certificate_table(const Reader& reader, const Image& image) {
  if (!image.is_signed()) return;
  const DataDirectory& table = image.data_directories[kDirectorySecurity];
  reader.need(table.virtual_address, table.size,
              "certificate table (security directory entry at " +
                  hex(directory_entry_offset(image, kDirectorySecurity)) + ")");
}

struct FileHeader {
  std::uint16_t section_count = 0;
  std::uint16_t optional_header_size = 0;
};

// The DOS header, PE signature, COFF file header and optional header, which
// parse() and check_prefix() read alike.
FileHeader read_headers(const Reader& reader, std::span<const std::uint8_t> file, Image& image) {
  refuse_other_formats(file);
  reader.need(0, kDosHeaderSize, "DOS header");
  if (file[0] != 'M' || file[1] != 'Z') {
    throw Error(at(0) + "not a PE image: no \"MZ\" DOS header signature");
  }
  const std::uint64_t pe_offset = reader.u32(kLfanewOffset, "e_lfanew (PE header offset)");
  reader.need(pe_offset, 4, "PE signature (e_lfanew " + hex(pe_offset) + ")");
  if (std::memcmp(file.data() + pe_offset, "PE\0\0", 4) != 0) {
    throw Error(at(pe_offset) + "not a PE image: no \"PE\\0\\0\" signature where e_lfanew points");
  }

  FileHeader header;
  const std::uint64_t coff = pe_offset + 4;
  reader.need(coff, kCoffHeaderSize, "COFF file header");
  image.coff_header_offset = static_cast<std::uint32_t>(coff);
  image.machine = reader.u16(coff, "Machine");
  header.section_count = reader.u16(coff + kCoffNumberOfSections, "NumberOfSections");
  image.pointer_to_symbol_table =
      reader.u32(coff + kCoffPointerToSymbolTable, "PointerToSymbolTable");
  image.number_of_symbols = reader.u32(coff + 12, "NumberOfSymbols");
  header.optional_header_size = reader.u16(coff + 16, "SizeOfOptionalHeader");
  image.characteristics = reader.u16(coff + 18, "Characteristics");

  image.optional_header_offset = static_cast<std::uint32_t>(coff + kCoffHeaderSize);
  read_optional_header(reader, image, header.optional_header_size);
  return header;
}

// The zero bytes after a section table ending at `table_end`, up to SizeOfHeaders.
std::uint32_t header_room(std::span<const std::uint8_t> file, const Image& image,
                          std::uint64_t table_end) {
  const auto begin = file.begin() + static_cast<std::ptrdiff_t>(table_end);
  const auto end = file.begin() + image.size_of_headers;
  return static_cast<std::uint32_t>(
      std::find_if(begin, end, [](std::uint8_t byte) { return byte != 0; }) - begin);
}

// Where the section table is (image.section_table_offset) and where it ends,
// checked: within what the reader has, and covered by SizeOfHeaders, which
// itself lies within the file of `file_size` bytes.
std::uint64_t read_section_table_bounds(const Reader& reader, Image& image,
                                        std::uint16_t section_count,
                                        std::uint16_t optional_header_size,
                                        std::uint64_t file_size) {
  const std::uint64_t table = std::uint64_t{image.optional_header_offset} + optional_header_size;
  const std::uint64_t table_end = table + kSectionHeaderSize * section_count;
  reader.need(table, table_end - table,
              "section table (" + std::to_string(section_count) + " sections)");
  image.section_table_offset = static_cast<std::uint32_t>(table);
  if (image.size_of_headers < table_end || image.size_of_headers > file_size) {
    throw Error(at(image.optional_header_offset + kOptSizeOfHeaders) + "SizeOfHeaders " +
                hex(image.size_of_headers) + " does not cover the section table (ending at " +
                hex(table_end) + ") or exceeds the file (" + hex(file_size) + " bytes)");
  }
  return table_end;
}

}  // namespace

bool Image::is_signed() const {
  return data_directories.size() > kDirectorySecurity &&
         data_directories[kDirectorySecurity].size != 0;
}

Image parse(std::span<const std::uint8_t> file) {
  const Reader reader(file);
  Image image;
  const auto [section_count, optional_header_size] = read_headers(reader, file, image);

  const std::uint64_t table_end =
      read_section_table_bounds(reader, image, section_count, optional_header_size, file.size());
  const std::uint64_t table = image.section_table_offset;
  image.header_room = header_room(file, image, table_end);
  read_symbol_table(reader, image);

  for (std::uint16_t i = 0; i < section_count; ++i) {
    const std::uint64_t header = table + kSectionHeaderSize * i;
    Section section;
    section.name = section_name(reader, file, image, header);
    section.virtual_size = reader.u32(header + 8, "VirtualSize");
    section.virtual_address = reader.u32(header + 12, "VirtualAddress");
    section.size_of_raw_data = reader.u32(header + 16, "SizeOfRawData");
    section.pointer_to_raw_data = reader.u32(header + kSecPointerToRawData, "PointerToRawData");
    section.pointer_to_relocations =
        reader.u32(header + kSecPointerToRelocations, "PointerToRelocations");
    section.pointer_to_linenumbers =
        reader.u32(header + kSecPointerToLinenumbers, "PointerToLinenumbers");
    section.characteristics = reader.u32(header + 36, "Characteristics");
    check_section(image, section, i, header, file.size());
    image.sections.push_back(std::move(section));
  }
  check_no_overlap(image);
  check_certificate_table(reader, image);
  read_debug_directory(reader, image, directory_entry_offset(image, kDirectoryDebug));
  return image;
}

std::string subsystem_name(std::uint16_t subsystem) {
  switch (subsystem) {
    case 1:
      return "native";
    case 2:
      return "Windows GUI";
    case 3:
      return "Windows console";
    case 5:
      return "OS/2 console";
    case 7:
      return "POSIX console";
    case 8:
      return "Windows 9x driver";
    case 9:
      return "Windows CE";
    case kSubsystemEfiApplication:
      return "EFI application";
    case 11:
      return "EFI boot service driver";
    case 12:
      return "EFI runtime driver";
    case 13:
      return "EFI ROM";
    case 14:
      return "Xbox";
    case 16:
      return "Windows boot application";
    default:  // 0 is IMAGE_SUBSYSTEM_UNKNOWN; others are undefined
      return "unknown";
  }
}

void check_efi_application(const Image& image) {
  if (image.subsystem == kSubsystemEfiApplication) return;
  throw Error(at(image.optional_header_offset + kOptSubsystem) + "Subsystem " +
              std::to_string(image.subsystem) + " (" + subsystem_name(image.subsystem) +
              "): not an EFI application (Subsystem " + std::to_string(kSubsystemEfiApplication) +
              ")");
}

void check_prefix(std::span<const std::uint8_t> prefix, std::uint64_t file_size) {
  Image image;
  read_headers(Reader(prefix, file_size), prefix, image);
  check_efi_application(image);
}

Image parse_headers(std::span<const std::uint8_t> prefix, std::uint64_t file_size) {
  const Reader reader(prefix, file_size);
  Image image;
  const auto [section_count, optional_header_size] = read_headers(reader, prefix, image);
  read_section_table_bounds(reader, image, section_count, optional_header_size, file_size);
  const std::uint64_t table = image.section_table_offset;
  for (std::uint16_t i = 0; i < section_count; ++i) {
    const std::uint64_t header = table + kSectionHeaderSize * i;
    Section section;
    const char* raw = reinterpret_cast<const char*>(prefix.data() + header);
    section.name.assign(raw, strnlen(raw, kShortNameSize));
    section.virtual_size = reader.u32(header + 8, "VirtualSize");
    section.virtual_address = reader.u32(header + 12, "VirtualAddress");
    section.size_of_raw_data = reader.u32(header + 16, "SizeOfRawData");
    section.pointer_to_raw_data = reader.u32(header + kSecPointerToRawData, "PointerToRawData");
    section.characteristics = reader.u32(header + 36, "Characteristics");
    check_section(image, section, i, header, file_size);
    image.sections.push_back(std::move(section));
  }
  check_no_overlap(image);
  return image;
}

std::optional<Extent> section_extent(const Image& image, const std::string& name) {
  for (const Section& section : image.sections) {
    if (section.name != name) continue;
    return Extent{section.pointer_to_raw_data,
                  std::min(memory_extent(section), std::uint64_t{section.size_of_raw_data})};
  }
  return std::nullopt;
}

std::vector<std::uint8_t> section_contents(std::span<const std::uint8_t> file, const Image& image,
                                           const std::string& name) {
  const auto extent = section_extent(image, name);
  if (!extent) return {};
  Reader(file).need(extent->offset, extent->size, "section " + name + " raw data");
  const auto begin = file.begin() + static_cast<std::ptrdiff_t>(extent->offset);
  return std::vector<std::uint8_t>(begin, begin + static_cast<std::ptrdiff_t>(extent->size));
}

namespace {

std::uint64_t first_free_rva(const Image& image, std::uint64_t floor,
                             const std::vector<bool>& kept) {
  std::uint64_t end = floor;
  for (std::size_t i = 0; i < image.sections.size(); ++i) {
    if (kept[i]) end = std::max(end, memory_end(image.sections[i]));
  }
  return align_up(end, image.section_alignment);
}

}  // namespace

std::uint32_t next_section_rva(const Image& image) {
  const std::uint64_t rva =
      first_free_rva(image, image.size_of_image, std::vector<bool>(image.sections.size(), true));
  if (rva > UINT32_MAX) {
    throw Error("no RVA left for a new section: the image already reaches " + hex(rva));
  }
  return static_cast<std::uint32_t>(rva);
}

std::uint64_t next_section_vma(const Image& image) {
  return image.image_base + next_section_rva(image);
}

std::string build_id(std::span<const std::uint8_t> file, const Image& image) {
  static constexpr std::uint32_t kRsdsSize = 4 + 16 + 4;  // signature, GUID, age
  for (const DebugEntry& entry : image.debug_entries) {
    if (entry.type != kDebugTypeCodeView || entry.pointer_to_raw_data == 0 ||
        entry.size_of_data < kRsdsSize) {
      continue;
    }
    const std::uint8_t* record = file.data() + entry.pointer_to_raw_data;
    if (std::memcmp(record, "RSDS", 4) != 0) continue;
    return hex_bytes(record + 4, 16);
  }
  return {};
}

namespace {

constexpr std::uint64_t kSymSectionNumber = 12;
constexpr std::uint64_t kSymNumberOfAuxSymbols = 17;
constexpr std::uint16_t kSymDebug = 0xfffe;  // IMAGE_SYM_DEBUG (-2)

void check_new_sections(const std::vector<NewSectionSize>& sections) {
  std::set<std::string> seen;
  for (const NewSectionSize& section : sections) {
    const std::string what = "new section \"" + section.name + "\": ";
    if (section.name.empty() || section.name.size() > kShortNameSize ||
        section.name.find('\0') != std::string::npos) {
      throw Error(what +
                  "a name must have 1 to 8 characters (executables have no long section names)");
    }
    if (!seen.insert(section.name).second) throw Error(what + "given twice");
    if (section.size == 0) throw Error(what + "no contents");
    if (section.size > UINT32_MAX) throw Error(what + "contents larger than 4 GiB");
  }
}

bool holds_directory_or_entry_point(const Image& image, const Section& section) {
  const auto inside = [&](std::uint32_t rva) {
    return rva >= section.virtual_address && rva < memory_end(section);
  };
  if (image.address_of_entry_point != 0 && inside(image.address_of_entry_point)) return true;
  for (std::size_t i = 0; i < image.data_directories.size(); ++i) {
    const DataDirectory& directory = image.data_directories[i];
    if (i != kDirectorySecurity && directory.size != 0 && inside(directory.virtual_address))
      return true;
  }
  return false;
}

bool is_debug_section(const Section& section) {
  return (section.characteristics & kScnMemDiscardable) != 0 && section.name.starts_with(".debug_");
}

// What becomes of each of the image's sections.
enum class Fate { kept, replaced, dropped };

std::vector<Fate> section_fates(const Image& image, const std::vector<NewSectionSize>& added,
                                const AddOptions& options) {
  std::vector<Fate> fates(image.sections.size(), Fate::kept);
  for (std::size_t i = 0; i < image.sections.size(); ++i) {
    const Section& section = image.sections[i];
    const std::string where =
        at(image.section_table_offset + kSectionHeaderSize * i) + describe(section, i);
    const bool named = std::any_of(added.begin(), added.end(),
                                   [&](const NewSectionSize& n) { return n.name == section.name; });
    if (named) {
      if (section.characteristics != kAddedSectionCharacteristics ||
          holds_directory_or_entry_point(image, section)) {
        throw Error(where + " is part of the program (characteristics " +
                    hex(section.characteristics) +
                    "), not an added data section; refusing to replace it");
      }
      fates[i] = Fate::replaced;
    } else if (options.drop_debug_sections && is_debug_section(section)) {
      if (holds_directory_or_entry_point(image, section)) {
        throw Error(where + " holds a data directory or the entry point; refusing to leave it out");
      }
      fates[i] = Fate::dropped;
    }
  }
  return fates;
}

struct Range {
  std::uint64_t start = 0;
  std::uint64_t end = 0;
};

// The file offsets the output carries, moved with their data (0 stays 0).
struct MovedPointers {
  // PointerToRawData, PointerToRelocations, PointerToLinenumbers of each
  // input section (meaningful for kept sections only).
  std::vector<std::array<std::uint32_t, 3>> sections;
  std::uint32_t symbol_table = 0;
  std::uint64_t debug_directory = 0;
  std::vector<std::uint32_t> debug_entries;  // PointerToRawData of each entry
};

// Where everything goes. The input is [headers][body: the kept sections' raw
// data, removed ones' in between][removed sections' raw data after all kept
// data][tail: COFF symbol and string tables, ...][certificate table]; the
// output is [headers, grown][body without the removed data][new sections][tail].
struct Layout {
  bool unchanged = false;  // nothing removed, nothing added: the output is the input
  std::vector<Fate> fates;
  std::size_t section_count = 0;
  std::uint64_t headers_size = 0;  // the new SizeOfHeaders
  std::uint64_t size_of_image = 0;
  std::vector<std::uint32_t> rvas;  // of the new sections
  // Input offsets.
  std::uint64_t headers_end = 0;  // the old SizeOfHeaders
  std::uint64_t body_end = 0;     // end of the kept sections' raw data
  std::vector<Range> cuts;        // removed raw data in the body, left out; sorted
  std::vector<Range> blanks;      // removed raw data in the body, zeroed instead
  std::uint64_t tail_start = 0;   // end of all sections' raw data
  std::uint64_t tail_end = 0;     // end of the file, or start of the certificate table
  // Output offsets.
  std::vector<std::uint64_t> raw_pointers;  // of the new sections
  std::uint64_t new_tail_start = 0;
  std::uint64_t output_size = 0;
  MovedPointers pointers;

  // Where a byte of the body that no cut removes goes.
  std::uint64_t body_offset(std::uint64_t offset) const {
    std::uint64_t removed = 0;
    for (const Range& cut : cuts) {
      if (cut.end <= offset) removed += cut.end - cut.start;
    }
    return offset + (headers_size - headers_end) - removed;
  }

  // Where the input byte at `offset`, which `what` points at, goes.
  std::uint64_t map(std::uint64_t offset, const std::string& what) const {
    if (offset < headers_end) return offset;
    if (offset < body_end) {
      const auto inside = [&](const Range& range) {
        return offset >= range.start && offset < range.end;
      };
      if (std::any_of(cuts.begin(), cuts.end(), inside) ||
          std::any_of(blanks.begin(), blanks.end(), inside)) {
        throw Error(what + " " + hex(offset) + " points into the raw data of a removed section");
      }
      return body_offset(offset);
    }
    if (offset >= tail_start && offset <= tail_end) return offset - tail_start + new_tail_start;
    throw Error(what + " " + hex(offset) +
                " points into removed section data or the certificate table");
  }

  std::uint32_t move(std::uint32_t offset, const std::string& what) const {
    return offset == 0 ? 0 : static_cast<std::uint32_t>(map(offset, what));
  }
};

std::uint64_t raw_size(std::uint64_t size, const Image& image) {
  return align_up(size, image.file_alignment);
}

// SizeOfHeaders for `section_count` section headers: unchanged when they fit,
// else grown by a multiple of FileAlignment, so that raw data moved down by
// the growth stays aligned.
std::uint64_t headers_size_for(const Image& image, std::size_t section_count) {
  const std::uint64_t table_end =
      std::uint64_t{image.section_table_offset} + kSectionHeaderSize * section_count;
  if (table_end <= image.size_of_headers) return image.size_of_headers;
  return image.size_of_headers + align_up(table_end - image.size_of_headers, image.file_alignment);
}

// The bytes the grown section table will cover beyond the old one must be
// free (zero): nothing else in the headers may be overwritten.
void check_header_room(const Image& image, std::size_t section_count) {
  const std::uint64_t free_end =
      image.section_table_offset + kSectionHeaderSize * image.sections.size() + image.header_room;
  const std::uint64_t new_end = image.section_table_offset + kSectionHeaderSize * section_count;
  if (new_end > free_end && free_end < image.size_of_headers) {
    throw Error(at(free_end) + "the header area after the section table is in use; no room for " +
                std::to_string(section_count) + " section headers");
  }
  std::uint64_t lowest_rva = UINT64_MAX;
  for (const Section& section : image.sections)
    lowest_rva = std::min<std::uint64_t>(lowest_rva, section.virtual_address);
  if (headers_size_for(image, section_count) > lowest_rva) {
    throw Error("SizeOfHeaders would have to grow to " +
                hex(headers_size_for(image, section_count)) + ", past the first section's RVA " +
                hex(lowest_rva));
  }
}

// Virtual addresses. A removed section gives its address space back: a
// replaced one marks where SizeOfImage stood before it was added (so that
// replacing is idempotent), and debug sections left out from above the
// program's own sections take SizeOfImage down to the sections that stay.
void place_in_memory(const Image& image, const std::vector<NewSectionSize>& added, Layout& layout) {
  std::uint64_t floor = image.size_of_image;
  std::vector<bool> kept(image.sections.size());
  for (std::size_t i = 0; i < image.sections.size(); ++i) {
    kept[i] = layout.fates[i] == Fate::kept;
    if (!kept[i]) floor = std::min<std::uint64_t>(floor, image.sections[i].virtual_address);
  }
  std::uint64_t next_rva = first_free_rva(image, floor, kept);
  for (const NewSectionSize& section : added) {
    if (next_rva + section.size > UINT32_MAX) {
      throw Error("new section \"" + section.name + "\" at RVA " + hex(next_rva) +
                  " would end beyond 4 GiB");
    }
    layout.rvas.push_back(static_cast<std::uint32_t>(next_rva));
    next_rva = align_up(next_rva + section.size, image.section_alignment);
  }
  if (next_rva > UINT32_MAX) throw Error("SizeOfImage " + hex(next_rva) + " would exceed 4 GiB");
  layout.size_of_image = next_rva;
}

// File offsets. Removed raw data inside the body is left out by whole
// FileAlignments, so that what follows stays aligned; a remainder (raw data
// whose size is not a FileAlignment multiple) is zeroed.
void place_in_file(const Image& image, std::uint64_t file_size,
                   const std::vector<NewSectionSize>& added, Layout& layout) {
  layout.headers_end = image.size_of_headers;
  layout.body_end = layout.headers_end;
  layout.tail_start = layout.headers_end;
  for (std::size_t i = 0; i < image.sections.size(); ++i) {
    const Section& section = image.sections[i];
    if (section.size_of_raw_data == 0) continue;
    layout.tail_start = std::max(layout.tail_start, raw_end(section));
    if (layout.fates[i] == Fate::kept)
      layout.body_end = std::max(layout.body_end, raw_end(section));
  }
  std::vector<Range> removed;
  for (std::size_t i = 0; i < image.sections.size(); ++i) {
    const Section& section = image.sections[i];
    if (layout.fates[i] != Fate::kept && section.size_of_raw_data != 0 &&
        raw_end(section) <= layout.body_end) {
      removed.push_back({section.pointer_to_raw_data, raw_end(section)});
    }
  }
  std::sort(removed.begin(), removed.end(),
            [](const Range& a, const Range& b) { return a.start < b.start; });
  std::vector<Range> merged;
  for (const Range& range : removed) {
    if (!merged.empty() && merged.back().end == range.start) {
      merged.back().end = range.end;
    } else {
      merged.push_back(range);
    }
  }
  for (const Range& range : merged) {
    const std::uint64_t cut_end =
        range.start + (range.end - range.start) / image.file_alignment * image.file_alignment;
    if (cut_end > range.start) layout.cuts.push_back({range.start, cut_end});
    if (cut_end < range.end) layout.blanks.push_back({cut_end, range.end});
  }

  layout.tail_end = file_size;
  if (image.is_signed()) {
    const DataDirectory& certificates = image.data_directories[kDirectorySecurity];
    if (certificates.virtual_address < layout.tail_start ||
        std::uint64_t{certificates.virtual_address} + certificates.size != file_size) {
      throw Error(
          at(certificates.virtual_address) +
          "the certificate table (security directory) is not at the end of the file, after all "
          "section data; cannot drop the signature");
    }
    layout.tail_end = certificates.virtual_address;
    const std::uint64_t symbols_end = std::uint64_t{image.pointer_to_symbol_table} +
                                      kSymbolSize * image.number_of_symbols +
                                      image.string_table_size;
    if (image.pointer_to_symbol_table != 0 && symbols_end > layout.tail_end) {
      throw Error(at(image.pointer_to_symbol_table) +
                  "the COFF symbol and string tables overlap the certificate table at " +
                  hex(layout.tail_end));
    }
  }

  std::uint64_t next = align_up(layout.body_offset(layout.body_end), image.file_alignment);
  for (const NewSectionSize& section : added) {
    layout.raw_pointers.push_back(next);
    next += raw_size(section.size, image);
  }
  layout.new_tail_start = next;
  layout.output_size = layout.new_tail_start + (layout.tail_end - layout.tail_start);
  if (layout.output_size > UINT32_MAX) throw Error("the output would exceed 4 GiB");
}

// Every file offset the output carries, moved; a pointer into removed data is an error.
MovedPointers move_pointers(const Image& image, const Layout& layout) {
  MovedPointers moved;
  for (std::size_t i = 0; i < image.sections.size(); ++i) {
    const Section& section = image.sections[i];
    const std::string what = describe(section, i);
    if (layout.fates[i] != Fate::kept) {
      moved.sections.push_back({});
      continue;
    }
    moved.sections.push_back(
        {section.size_of_raw_data == 0
             ? section.pointer_to_raw_data
             : layout.move(section.pointer_to_raw_data, what + " PointerToRawData"),
         layout.move(section.pointer_to_relocations, what + " PointerToRelocations"),
         layout.move(section.pointer_to_linenumbers, what + " PointerToLinenumbers")});
  }
  moved.symbol_table = layout.move(image.pointer_to_symbol_table, "PointerToSymbolTable");
  if (image.pointer_to_symbol_table != 0) {
    const std::uint64_t size = kSymbolSize * image.number_of_symbols + image.string_table_size;
    if (layout.map(image.pointer_to_symbol_table + size, "end of the COFF string table") !=
        moved.symbol_table + size) {
      throw Error(at(image.pointer_to_symbol_table) +
                  "the COFF symbol and string tables overlap the raw data of a removed section");
    }
  }
  if (image.debug_directory_offset != 0) {
    moved.debug_directory = layout.map(image.debug_directory_offset, "debug directory");
    for (const DebugEntry& entry : image.debug_entries) {
      moved.debug_entries.push_back(
          layout.move(entry.pointer_to_raw_data, "debug directory entry PointerToRawData"));
    }
  }
  return moved;
}

Layout plan_layout(const Image& image, std::uint64_t file_size,
                   const std::vector<NewSectionSize>& added, const AddOptions& options) {
  check_new_sections(added);
  Layout layout;
  layout.fates = section_fates(image, added, options);
  const auto kept_count =
      static_cast<std::size_t>(std::count(layout.fates.begin(), layout.fates.end(), Fate::kept));
  if (kept_count == image.sections.size() && added.empty() &&
      (!options.pad_for_signing || file_size % 8 == 0)) {
    layout.unchanged = true;
    layout.output_size = file_size;
    return layout;
  }
  layout.section_count = kept_count + added.size();
  if (layout.section_count > UINT16_MAX) throw Error("add_sections: more than 65535 sections");
  check_header_room(image, layout.section_count);
  layout.headers_size = headers_size_for(image, layout.section_count);
  place_in_memory(image, added, layout);
  place_in_file(image, file_size, added, layout);
  if (options.pad_for_signing) layout.output_size = align_up(layout.output_size, 8);
  layout.pointers = move_pointers(image, layout);
  return layout;
}

void write_section_header(std::uint8_t* header, const NewSectionSize& section, std::uint32_t rva,
                          std::uint64_t raw_pointer, const Image& image) {
  std::memset(header, 0, kSectionHeaderSize);
  std::memcpy(header, section.name.data(), section.name.size());
  store32(header + 8, static_cast<std::uint32_t>(section.size));
  store32(header + 12, rva);
  store32(header + 16, static_cast<std::uint32_t>(raw_size(section.size, image)));
  store32(header + kSecPointerToRawData, static_cast<std::uint32_t>(raw_pointer));
  store32(header + 36, kAddedSectionCharacteristics);
}

// Section table: kept headers (file pointers moved), then the new ones, then
// zeros where old headers were.
void write_section_table(std::span<const std::uint8_t> file, const Image& image,
                         const std::vector<NewSectionSize>& added, const Layout& layout,
                         std::uint8_t* table) {
  std::uint8_t* header = table;
  for (std::size_t i = 0; i < image.sections.size(); ++i) {
    if (layout.fates[i] != Fate::kept) continue;
    std::memcpy(header, file.data() + image.section_table_offset + kSectionHeaderSize * i,
                kSectionHeaderSize);
    const auto& [raw, relocations, linenumbers] = layout.pointers.sections[i];
    store32(header + kSecPointerToRawData, raw);
    store32(header + kSecPointerToRelocations, relocations);
    store32(header + kSecPointerToLinenumbers, linenumbers);
    header += kSectionHeaderSize;
  }
  for (std::size_t i = 0; i < added.size(); ++i) {
    write_section_header(header, added[i], layout.rvas[i], layout.raw_pointers[i], image);
    header += kSectionHeaderSize;
  }
  if (layout.section_count < image.sections.size()) {
    std::fill_n(header, kSectionHeaderSize * (image.sections.size() - layout.section_count), 0);
  }
}

// The output's header block, [0, SizeOfHeaders): the input's headers (grown
// with zeros), the new section table, and the COFF and optional header fields
// that change. The CheckSum field is left as it was: Emitter puts it.
std::vector<std::uint8_t> header_block(std::span<const std::uint8_t> file, const Image& image,
                                       const std::vector<NewSectionSize>& added,
                                       const Layout& layout) {
  std::vector<std::uint8_t> out(file.begin(),
                                file.begin() + static_cast<std::ptrdiff_t>(layout.headers_end));
  out.resize(layout.headers_size, 0);
  write_section_table(file, image, added, layout, out.data() + image.section_table_offset);

  std::uint8_t* coff = out.data() + image.coff_header_offset;
  store16(coff + kCoffNumberOfSections, static_cast<std::uint16_t>(layout.section_count));
  store32(coff + kCoffPointerToSymbolTable, layout.pointers.symbol_table);
  std::uint8_t* opt = out.data() + image.optional_header_offset;
  // Replaced sections were counted in SizeOfInitializedData (we count what we
  // add). Left-out debug sections are not subtracted: GNU ld counts only the
  // sections BFD marks as code or data, which debugging sections never are, so
  // the value never included them (Xen 4.20: 0x117d40, the sum over its
  // initialised sections other than .debug_*; objcopy --strip-debug agrees).
  std::uint64_t replaced_initialized = 0;
  for (std::size_t i = 0; i < image.sections.size(); ++i) {
    if (layout.fates[i] == Fate::replaced &&
        (image.sections[i].characteristics & kScnCntInitializedData)) {
      replaced_initialized += image.sections[i].size_of_raw_data;
    }
  }
  std::uint64_t initialized =
      image.size_of_initialized_data -
      std::min<std::uint64_t>(replaced_initialized, image.size_of_initialized_data);
  for (const NewSectionSize& section : added) initialized += raw_size(section.size, image);
  store32(opt + kOptSizeOfInitializedData,
          static_cast<std::uint32_t>(std::min<std::uint64_t>(initialized, UINT32_MAX)));
  store32(opt + kOptSizeOfImage, static_cast<std::uint32_t>(layout.size_of_image));
  store32(opt + kOptSizeOfHeaders, static_cast<std::uint32_t>(layout.headers_size));
  if (image.is_signed()) {
    std::memset(
        opt + directory_entry_offset(image, kDirectorySecurity) - image.optional_header_offset, 0,
        kDataDirectorySize);
  }
  return out;
}

// A little-endian field of the output that differs from the input bytes
// copied there.
struct Patch {
  std::uint64_t offset = 0;
  std::uint32_t value = 0;
  std::uint32_t size = 0;  // bytes, at most 4
};

// Section numbers in the COFF symbol table follow the new section table: a
// replaced section's symbols go to the new section of its name. objcopy
// --strip-debug deletes the symbols of the sections it removes, which
// renumbers every later symbol; but aux records (function definitions, weak
// externals) and COFF relocations refer to symbols by index, so deleting them
// would mean rewriting all of those. Instead every record keeps its place and
// the symbols of left-out sections become IMAGE_SYM_DEBUG, "not corresponding
// to a section", which is what they now are. (Xen 4.20's symbols refer to no
// .debug_* section, so there it only matters for sections numbered after them.)
void add_symbol_patches(std::span<const std::uint8_t> file, const Image& image,
                        const std::vector<NewSectionSize>& added, const Layout& layout,
                        std::vector<Patch>& patches) {
  if (image.pointer_to_symbol_table == 0) return;
  std::vector<std::uint16_t> numbers(image.sections.size());
  std::uint16_t next = 1;
  for (std::size_t i = 0; i < image.sections.size(); ++i) {
    if (layout.fates[i] == Fate::kept) numbers[i] = next++;
  }
  for (std::size_t i = 0; i < image.sections.size(); ++i) {
    if (layout.fates[i] == Fate::dropped) numbers[i] = kSymDebug;
    if (layout.fates[i] != Fate::replaced) continue;
    const auto replacement = std::find_if(added.begin(), added.end(), [&](const NewSectionSize& n) {
      return n.name == image.sections[i].name;
    });
    numbers[i] = static_cast<std::uint16_t>(next + (replacement - added.begin()));
  }
  const std::uint8_t* symbols = file.data() + image.pointer_to_symbol_table;
  for (std::uint64_t i = 0; i < image.number_of_symbols;
       i += 1 + symbols[kSymbolSize * i + kSymNumberOfAuxSymbols]) {
    const std::uint16_t number = load16(symbols + kSymbolSize * i + kSymSectionNumber);
    if (number >= 1 && number <= image.sections.size() && numbers[number - 1] != number) {
      patches.push_back({layout.pointers.symbol_table + kSymbolSize * i + kSymSectionNumber,
                         numbers[number - 1], 2});
    }
  }
}

// The fields outside the header block that follow moved data: symbols'
// section numbers, debug directory entries' PointerToRawData. Sorted by
// offset (stably: of two patches of the same bytes, the later one wins).
std::vector<Patch> scattered_patches(std::span<const std::uint8_t> file, const Image& image,
                                     const std::vector<NewSectionSize>& added,
                                     const Layout& layout) {
  std::vector<Patch> patches;
  add_symbol_patches(file, image, added, layout, patches);
  for (std::size_t i = 0; i < layout.pointers.debug_entries.size(); ++i) {
    patches.push_back(
        {layout.pointers.debug_directory + kDebugEntrySize * i + kDebugPointerToRawData,
         layout.pointers.debug_entries[i], 4});
  }
  std::stable_sort(patches.begin(), patches.end(),
                   [](const Patch& a, const Patch& b) { return a.offset < b.offset; });
  return patches;
}

// The PE checksum of bytes that arrive in order: the 16-bit little-endian
// words at even file offsets summed (a trailing odd byte counts alone), the
// carries folded, plus the file length. Summing in 64 bits and folding once
// at the end gives the same result as folding after every word; 64 bits hold
// the sum of a 4 GiB file.
class ChecksumSum {
 public:
  void add(std::span<const std::uint8_t> bytes) {
    const std::uint8_t* p = bytes.data();
    std::size_t n = bytes.size();
    if (n == 0) return;
    if (length_ % 2 == 1) {  // the high byte of a word begun by the last piece
      sum_ += std::uint64_t{p[0]} << 8;
      ++p;
      --n;
    }
    // Four words at a time: words 0 and 2 of each 8 bytes in the two 32-bit
    // halves of one accumulator, words 1 and 3 in another, emptied into the
    // sum before a half can overflow (65536 * 0xffff < 2^32).
    constexpr std::uint64_t kHalves = 0x0000ffff0000ffff;
    constexpr std::size_t kBlocksPerRound = 65536;
    std::size_t blocks = n / 8;
    while (blocks != 0) {
      const std::size_t round = std::min(blocks, kBlocksPerRound);
      std::uint64_t even = 0;
      std::uint64_t odd = 0;
      for (std::size_t i = 0; i < round; ++i) {
        const std::uint64_t block = load64(p + 8 * i);
        even += block & kHalves;
        odd += (block >> 16) & kHalves;
      }
      sum_ += (even & 0xffffffff) + (even >> 32) + (odd & 0xffffffff) + (odd >> 32);
      p += 8 * round;
      n -= 8 * round;
      blocks -= round;
    }
    for (; n >= 2; p += 2, n -= 2) sum_ += load16(p);
    if (n == 1) sum_ += p[0];
    length_ += bytes.size();
  }
  // Zero bytes count for nothing but their place.
  void add_zeros(std::uint64_t count) { length_ += count; }
  // `count` bytes whose words sum to `sum`, summed before (see InputSums).
  void add_summed(std::uint64_t count, std::uint64_t sum) {
    sum_ += sum;
    length_ += count;
  }

  std::uint64_t length() const { return length_; }
  std::uint64_t sum() const { return sum_; }
  std::uint32_t value() const {
    std::uint64_t folded = sum_;
    while (folded >> 16) folded = (folded & 0xffff) + (folded >> 16);
    return static_cast<std::uint32_t>(folded + length_);
  }

 private:
  std::uint64_t sum_ = 0;
  std::uint64_t length_ = 0;
};

// The largest piece the writer copies to apply patches (held with the whole
// xen.efi: more would only add to a run's peak memory), and the size of its
// zero block.
constexpr std::size_t kWindowBytes = 1 << 18;
constexpr std::size_t kZeroBlockBytes = 64 * 1024;

// Passes the output to a sink in order and sums it for the CheckSum: input
// bytes (copied, with the patches that fall in them applied) and new
// sections' bytes (passed through: no patch lies in them, since every patch
// is at a moved input offset). The CheckSum field holds `checksum.value` and
// counts as zero. Pieces of `input` that no patch touches and that go at an
// even offset are summed once when `sums` keeps them; zeros not at all.
class Emitter {
 public:
  Emitter(ByteSink& sink, std::vector<Patch> patches, Patch checksum,
          std::span<const std::uint8_t> input = {}, InputSums* sums = nullptr)
      : sink_(sink),
        patches_(std::move(patches)),
        checksum_(checksum),
        input_(input),
        sums_(sums) {}

  // Bytes from the input file or the header block.
  void put(std::span<const std::uint8_t> bytes) {
    while (!bytes.empty()) {
      const std::size_t size = std::min(bytes.size(), kWindowBytes);
      put_window(bytes.first(size));
      bytes = bytes.subspan(size);
    }
  }
  void put_zeros(std::uint64_t count) {
    static constexpr std::array<std::uint8_t, kZeroBlockBytes> zeros{};
    while (count != 0) {
      const std::size_t size =
          static_cast<std::size_t>(std::min<std::uint64_t>(count, zeros.size()));
      put_window(std::span(zeros).first(size), true);
      count -= size;
    }
  }
  // A new section's bytes.
  void pass(std::span<const std::uint8_t> bytes) {
    sum_.add(bytes);
    sink_.write(bytes);
  }

  std::uint64_t offset() const { return sum_.length(); }
  const ChecksumSum& sum() const { return sum_; }

 private:
  static bool overlaps(const Patch& patch, std::uint64_t start, std::uint64_t end) {
    return patch.offset < end && patch.offset + patch.size > start;
  }
  static void apply(const Patch& patch, std::uint32_t value, std::uint64_t start,
                    std::span<std::uint8_t> window) {
    for (std::uint32_t k = 0; k < patch.size; ++k) {
      const std::uint64_t at = patch.offset + k;
      if (at >= start && at < start + window.size()) {
        window[at - start] = static_cast<std::uint8_t>(value >> (8 * k));
      }
    }
  }

  // Whether `window` lies within the input file.
  bool in_input(std::span<const std::uint8_t> window) const {
    const std::less_equal<const std::uint8_t*> at_most;
    return !input_.empty() && at_most(input_.data(), window.data()) &&
           at_most(window.data() + window.size(), input_.data() + input_.size());
  }

  // Sums an untouched window: zeros for nothing, a piece of the input once.
  void add_untouched(std::span<const std::uint8_t> window, bool zeros) {
    if (zeros) {
      sum_.add_zeros(window.size());
    } else if (sums_ && offset() % 2 == 0 && in_input(window)) {
      std::optional<std::uint64_t> sum = sums_->find(window.data(), window.size());
      if (!sum) {
        ChecksumSum piece;
        piece.add(window);
        sum = piece.sum();
        sums_->keep(window.data(), window.size(), *sum);
      }
      sum_.add_summed(window.size(), *sum);
    } else {
      sum_.add(window);
    }
  }

  // Puts the bytes untouched, or copied with the patches that fall in them
  // applied: only the spans the patches touch are copied (with the bytes
  // between patches closer than kStageGap), the rest passes as it is.
  void put_window(std::span<const std::uint8_t> window, bool zeros = false) {
    const std::uint64_t start = offset();
    const std::uint64_t end = start + window.size();
    while (next_ < patches_.size() && patches_[next_].offset + patches_[next_].size <= start) {
      ++next_;
    }
    spans_.clear();
    const auto touch = [&](const Patch& patch, std::size_t first, std::size_t last) {
      const std::uint64_t from = std::max(patch.offset, start);
      const std::uint64_t to = std::min(patch.offset + patch.size, end);
      if (to <= from) return;  // within an earlier patch, before the window
      if (!spans_.empty() && from <= spans_.back().end + kStageGap) {
        spans_.back().end = std::max(spans_.back().end, to);
        spans_.back().last = std::max(spans_.back().last, last);
      } else {
        spans_.push_back({from, to, first, last});
      }
    };
    bool checksum = overlaps(checksum_, start, end);
    std::size_t i = next_;
    for (; i < patches_.size() && patches_[i].offset < end; ++i) {
      if (checksum && checksum_.offset <= patches_[i].offset) {
        touch(checksum_, i, i);
        checksum = false;
      }
      touch(patches_[i], i, i + 1);
    }
    if (checksum) touch(checksum_, i, i);
    std::uint64_t at = start;
    for (const Span& span : spans_) {
      put_untouched(window.subspan(at - start, span.begin - at), zeros);
      staging_.assign(window.begin() + static_cast<std::ptrdiff_t>(span.begin - start),
                      window.begin() + static_cast<std::ptrdiff_t>(span.end - start));
      for (std::size_t k = span.first; k < span.last; ++k)
        apply(patches_[k], patches_[k].value, span.begin, staging_);
      apply(checksum_, 0, span.begin, staging_);
      sum_.add(staging_);
      apply(checksum_, checksum_.value, span.begin, staging_);
      sink_.write(staging_);
      at = span.end;
    }
    put_untouched(window.subspan(at - start), zeros);
  }

  void put_untouched(std::span<const std::uint8_t> bytes, bool zeros) {
    if (bytes.empty()) return;
    add_untouched(bytes, zeros);
    sink_.write(bytes);
  }

  // A span of a window that patches touch, and the patches in it.
  struct Span {
    std::uint64_t begin;
    std::uint64_t end;
    std::size_t first;  // patches_[first, last)
    std::size_t last;
  };
  static constexpr std::uint64_t kStageGap = 4096;

  ByteSink& sink_;
  std::vector<Patch> patches_;
  std::size_t next_ = 0;  // patches before it end before the next window
  Patch checksum_;
  std::span<const std::uint8_t> input_;
  InputSums* sums_;
  ChecksumSum sum_;
  std::vector<std::uint8_t> staging_;
  std::vector<Span> spans_;
};

// A sink that keeps nothing: for a pass that only sums.
class Discard : public ByteSink {
 public:
  void write(std::span<const std::uint8_t>) override {}
};

// The output as one vector, for add_sections.
class VectorSink : public FileSink {
 public:
  explicit VectorSink(std::uint64_t size) { bytes.reserve(size); }
  void write(std::span<const std::uint8_t> piece) override {
    bytes.insert(bytes.end(), piece.begin(), piece.end());
  }
  void write_at(std::uint64_t offset, std::span<const std::uint8_t> piece) override {
    if (offset > bytes.size() || piece.size() > bytes.size() - offset) {
      throw Error("write_at " + hex(offset) + " beyond the " + hex(bytes.size()) +
                  " bytes written");
    }
    std::copy(piece.begin(), piece.end(), bytes.begin() + static_cast<std::ptrdiff_t>(offset));
  }
  std::vector<std::uint8_t> bytes;
};

std::uint64_t checksum_field_offset(const Image& image) {
  return std::uint64_t{image.optional_header_offset} + kOptCheckSum;
}

}  // namespace

std::optional<std::uint64_t> InputSums::find(const std::uint8_t* start, std::size_t size) const {
  auto found = sums_.find({start, size});
  if (found == sums_.end()) return std::nullopt;
  return found->second;
}

void InputSums::keep(const std::uint8_t* start, std::size_t size, std::uint64_t sum) {
  sums_[{start, size}] = sum;
}

std::uint32_t compute_checksum(std::span<const std::uint8_t> file, const Image& image) {
  const std::size_t field = std::min<std::size_t>(checksum_field_offset(image), file.size());
  const std::size_t after = std::min<std::size_t>(field + 4, file.size());
  ChecksumSum sum;
  sum.add(file.first(field));
  sum.add_zeros(after - field);
  sum.add(file.subspan(after));
  return sum.value();
}

std::uint64_t output_size(const Image& image, std::uint64_t file_size,
                          const std::vector<NewSectionSize>& sections, const AddOptions& options) {
  return plan_layout(image, file_size, sections, options).output_size;
}

struct Output::Parts {
  std::span<const std::uint8_t> file;
  const Image& image;
  std::vector<NewSectionSize> sections;
  Layout layout;
  std::vector<std::string> warnings;
};

Output::Output(std::span<const std::uint8_t> file, const Image& image,
               const std::vector<NewSectionSize>& sections, const AddOptions& options) {
  Layout layout = plan_layout(image, file.size(), sections, options);
  std::vector<std::string> warnings;
  if (!layout.unchanged && image.is_signed()) {
    warnings.push_back(
        "dropped the Authenticode signature (security directory): it cannot stay valid once "
        "sections are added or removed; sign the output again");
  }
  parts_ = std::make_unique<const Parts>(
      Parts{file, image, sections, std::move(layout), std::move(warnings)});
}

Output::~Output() = default;

std::uint64_t Output::size() const { return parts_->layout.output_size; }

const std::vector<std::string>& Output::warnings() const { return parts_->warnings; }

// The output in order: [header block][body without the removed data, blanks
// zeroed][new sections, each FileAlignment aligned][tail]. Returns the
// CheckSum the output must carry: the sum of the bytes emitted, or the
// input's own when the output is the input. `section_sums` receives the sum
// of each new section's words, to tell whether contents changed between two
// passes.
std::uint32_t Output::emit(const std::vector<SectionContents>& contents, ByteSink& sink,
                           std::uint32_t checksum_field, std::vector<std::uint64_t>& section_sums,
                           InputSums* sums) const {
  const auto& [file, image, sections, layout, warnings] = *parts_;
  if (contents.size() != sections.size()) {
    throw Error("add_sections: " + std::to_string(contents.size()) + " contents for " +
                std::to_string(sections.size()) + " new sections");
  }
  const Patch checksum{checksum_field_offset(image), checksum_field, 4};
  if (layout.unchanged) {
    Emitter out(sink, {}, checksum, file, sums);
    out.put(file);
    return image.checksum;
  }

  Emitter out(sink, scattered_patches(file, image, sections, layout), checksum, file, sums);
  out.put(header_block(file, image, sections, layout));
  std::vector<std::pair<Range, bool>> removed;  // cuts (false) and blanks (true), in file order
  for (const Range& cut : layout.cuts) removed.push_back({cut, false});
  for (const Range& blank : layout.blanks) removed.push_back({blank, true});
  std::sort(removed.begin(), removed.end(),
            [](const auto& a, const auto& b) { return a.first.start < b.first.start; });
  std::uint64_t from = layout.headers_end;
  for (const auto& [range, blank] : removed) {
    out.put(file.subspan(from, range.start - from));
    if (blank) out.put_zeros(range.end - range.start);
    from = range.end;
  }
  out.put(file.subspan(from, layout.body_end - from));

  section_sums.clear();
  for (std::size_t i = 0; i < sections.size(); ++i) {
    const NewSectionSize& section = sections[i];
    out.put_zeros(layout.raw_pointers[i] - out.offset());
    const std::uint64_t sum_before = out.sum().sum();
    std::uint64_t delivered = 0;
    contents[i]([&](std::span<const std::uint8_t> piece) {
      if (piece.size() > section.size - delivered) {
        throw Error("new section \"" + section.name + "\": its contents give more than the " +
                    std::to_string(section.size) + " bytes declared");
      }
      out.pass(piece);
      delivered += piece.size();
    });
    if (delivered != section.size) {
      throw Error("new section \"" + section.name + "\": its contents give " +
                  std::to_string(delivered) + " of the " + std::to_string(section.size) +
                  " bytes declared");
    }
    section_sums.push_back(out.sum().sum() - sum_before);
  }
  out.put_zeros(layout.new_tail_start - out.offset());
  out.put(file.subspan(layout.tail_start, layout.tail_end - layout.tail_start));
  out.put_zeros(layout.output_size - out.offset());
  return out.sum().value();
}

void Output::write(const std::vector<SectionContents>& contents, FileSink& file,
                   InputSums* sums) const {
  std::vector<std::uint64_t> section_sums;
  const std::uint32_t checksum = emit(contents, file, 0, section_sums, sums);
  std::array<std::uint8_t, 4> field{};
  store32(field.data(), checksum);
  file.write_at(checksum_field_offset(parts_->image), field);
}

void Output::stream(const std::vector<SectionContents>& contents, ByteSink& sink,
                    InputSums* sums) const {
  Discard discard;
  std::vector<std::uint64_t> first_sums;
  const std::uint32_t checksum = emit(contents, discard, 0, first_sums, sums);
  std::vector<std::uint64_t> second_sums;
  emit(contents, sink, checksum, second_sums, sums);
  for (std::size_t i = 0; i < first_sums.size(); ++i) {
    if (second_sums[i] != first_sums[i]) {
      throw Error("new section \"" + parts_->sections[i].name +
                  "\": its contents changed between the pass that summed them for the CheckSum "
                  "and the pass that streamed them");
    }
  }
}

AddResult add_sections(std::span<const std::uint8_t> file, const std::vector<NewSection>& added,
                       const AddOptions& options) {
  const Image image = parse(file);
  std::vector<NewSectionSize> sizes;
  std::vector<SectionContents> contents;
  for (const NewSection& section : added) {
    sizes.push_back({section.name, section.data.size()});
    contents.push_back([&section](const Deliver& deliver) { deliver(section.data); });
  }
  const Output output(file, image, sizes, options);
  VectorSink sink(output.size());
  output.write(contents, sink);
  return {std::move(sink.bytes), output.warnings()};
}

}  // namespace xbb::pe
