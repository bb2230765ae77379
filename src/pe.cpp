#include "xbb/pe.hpp"

#include <algorithm>
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
  explicit Reader(std::span<const std::uint8_t> file) : file_(file) {}

  void need(std::uint64_t offset, std::uint64_t size, const std::string& what) const {
    if (offset > file_.size() || size > file_.size() - offset) {
      throw Error(at(offset) + what + " (" + hex(size) +
                  " bytes) extends past the end of the file (" + hex(file_.size()) + " bytes)");
    }
  }
  std::uint16_t u16(std::uint64_t offset, const std::string& what) const {
    need(offset, 2, what);
    return load16(file_.data() + offset);
  }
  std::uint32_t u32(std::uint64_t offset, const std::string& what) const {
    need(offset, 4, what);
    return load32(file_.data() + offset);
  }
  std::uint64_t u64(std::uint64_t offset, const std::string& what) const {
    need(offset, 8, what);
    return load64(file_.data() + offset);
  }

 private:
  std::span<const std::uint8_t> file_;
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
  const std::string what = describe(section, index);
  if (section.size_of_raw_data != 0) {
    if (section.pointer_to_raw_data < image.size_of_headers) {
      throw Error(at(header_offset + kSecPointerToRawData) + what + ": PointerToRawData " +
                  hex(section.pointer_to_raw_data) + " lies inside the headers (SizeOfHeaders " +
                  hex(image.size_of_headers) + ")");
    }
    if (raw_end(section) > file_size) {
      throw Error(at(header_offset + kSecPointerToRawData) + what + ": raw data " +
                  hex(section.pointer_to_raw_data) + "+" + hex(section.size_of_raw_data) +
                  " extends past the end of the file (" + hex(file_size) + " bytes)");
    }
  }
  if (section.virtual_address < image.size_of_headers) {
    throw Error(at(header_offset) + what + ": VirtualAddress " + hex(section.virtual_address) +
                " lies inside the headers (SizeOfHeaders " + hex(image.size_of_headers) + ")");
  }
  if (memory_end(section) > image.size_of_image) {
    throw Error(at(header_offset) + what + ": ends at RVA " + hex(memory_end(section)) +
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
  image.subsystem = reader.u16(opt + 68, "Subsystem");

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

}  // namespace

bool Image::is_signed() const {
  return data_directories.size() > kDirectorySecurity &&
         data_directories[kDirectorySecurity].size != 0;
}

Image parse(std::span<const std::uint8_t> file) {
  refuse_other_formats(file);
  const Reader reader(file);
  reader.need(0, kDosHeaderSize, "DOS header");
  if (file[0] != 'M' || file[1] != 'Z') {
    throw Error(at(0) + "not a PE image: no \"MZ\" DOS header signature");
  }
  const std::uint64_t pe_offset = reader.u32(kLfanewOffset, "e_lfanew (PE header offset)");
  reader.need(pe_offset, 4, "PE signature (e_lfanew " + hex(pe_offset) + ")");
  if (std::memcmp(file.data() + pe_offset, "PE\0\0", 4) != 0) {
    throw Error(at(pe_offset) + "not a PE image: no \"PE\\0\\0\" signature where e_lfanew points");
  }

  Image image;
  const std::uint64_t coff = pe_offset + 4;
  reader.need(coff, kCoffHeaderSize, "COFF file header");
  image.coff_header_offset = static_cast<std::uint32_t>(coff);
  image.machine = reader.u16(coff, "Machine");
  const std::uint16_t section_count = reader.u16(coff + kCoffNumberOfSections, "NumberOfSections");
  image.pointer_to_symbol_table =
      reader.u32(coff + kCoffPointerToSymbolTable, "PointerToSymbolTable");
  image.number_of_symbols = reader.u32(coff + 12, "NumberOfSymbols");
  const std::uint16_t optional_header_size = reader.u16(coff + 16, "SizeOfOptionalHeader");
  image.characteristics = reader.u16(coff + 18, "Characteristics");

  image.optional_header_offset = static_cast<std::uint32_t>(coff + kCoffHeaderSize);
  read_optional_header(reader, image, optional_header_size);

  const std::uint64_t table = std::uint64_t{image.optional_header_offset} + optional_header_size;
  const std::uint64_t table_end = table + kSectionHeaderSize * section_count;
  reader.need(table, table_end - table,
              "section table (" + std::to_string(section_count) + " sections)");
  image.section_table_offset = static_cast<std::uint32_t>(table);
  if (image.size_of_headers < table_end || image.size_of_headers > file.size()) {
    throw Error(at(image.optional_header_offset + kOptSizeOfHeaders) + "SizeOfHeaders " +
                hex(image.size_of_headers) + " does not cover the section table (ending at " +
                hex(table_end) + ") or exceeds the file (" + hex(file.size()) + " bytes)");
  }
  read_symbol_table(reader, image);

  for (std::uint16_t i = 0; i < section_count; ++i) {
    const std::uint64_t header = table + kSectionHeaderSize * i;
    Section section;
    section.name = section_name(reader, file, image, header);
    section.virtual_size = reader.u32(header + 8, "VirtualSize");
    section.virtual_address = reader.u32(header + 12, "VirtualAddress");
    section.size_of_raw_data = reader.u32(header + 16, "SizeOfRawData");
    section.pointer_to_raw_data = reader.u32(header + kSecPointerToRawData, "PointerToRawData");
    section.characteristics = reader.u32(header + 36, "Characteristics");
    check_section(image, section, i, header, file.size());
    image.sections.push_back(std::move(section));
  }
  check_no_overlap(image);
  check_certificate_table(reader, image);
  read_debug_directory(reader, image, directory_entry_offset(image, kDirectoryDebug));
  return image;
}

std::vector<std::uint8_t> section_contents(std::span<const std::uint8_t> file, const Image& image,
                                           const std::string& name) {
  for (const Section& section : image.sections) {
    if (section.name != name) continue;
    const std::uint64_t size =
        std::min(memory_extent(section), std::uint64_t{section.size_of_raw_data});
    Reader(file).need(section.pointer_to_raw_data, size, "section " + name + " raw data");
    const auto begin = file.begin() + section.pointer_to_raw_data;
    return std::vector<std::uint8_t>(begin, begin + static_cast<std::ptrdiff_t>(size));
  }
  return {};
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

std::uint32_t compute_checksum(std::span<const std::uint8_t> file, const Image& image) {
  // One's-complement sum of the little-endian 16-bit words (a trailing odd
  // byte counts alone), the CheckSum field counted as zero. Summing in 64 bits
  // and folding the carries once at the end gives the same result as folding
  // after every word, and lets the compiler vectorise the loop.
  const std::size_t size = file.size();
  auto word_at = [&](std::size_t offset) -> std::uint64_t {
    return offset + 1 < size ? load16(file.data() + offset) : file[offset];
  };
  std::uint64_t sum = 0;
  for (std::size_t offset = 0; offset < size; offset += 2) sum += word_at(offset);
  const std::uint64_t field = std::uint64_t{image.optional_header_offset} + kOptCheckSum;
  for (std::uint64_t skipped : {field, field + 2}) {
    if (skipped % 2 == 0 && skipped < size) sum -= word_at(static_cast<std::size_t>(skipped));
  }
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<std::uint32_t>(sum + size);
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

void check_new_sections(const std::vector<NewSection>& sections) {
  if (sections.empty()) throw Error("add_sections: no sections to add");
  std::set<std::string> seen;
  for (const NewSection& section : sections) {
    const std::string what = "new section \"" + section.name + "\": ";
    if (section.name.empty() || section.name.size() > kShortNameSize ||
        section.name.find('\0') != std::string::npos) {
      throw Error(what +
                  "a name must have 1 to 8 characters (executables have no long section names)");
    }
    if (!seen.insert(section.name).second) throw Error(what + "given twice");
    if (section.data.empty()) throw Error(what + "no contents");
    if (section.data.size() > UINT32_MAX) throw Error(what + "contents larger than 4 GiB");
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

// Which of the image's sections stay; the others are replaced by new ones.
std::vector<bool> sections_to_keep(const Image& image, const std::vector<NewSection>& added) {
  std::vector<bool> kept(image.sections.size(), true);
  for (std::size_t i = 0; i < image.sections.size(); ++i) {
    const Section& section = image.sections[i];
    const bool named = std::any_of(added.begin(), added.end(),
                                   [&](const NewSection& n) { return n.name == section.name; });
    if (!named) continue;
    if (section.characteristics != kAddedSectionCharacteristics ||
        holds_directory_or_entry_point(image, section)) {
      throw Error(at(image.section_table_offset + kSectionHeaderSize * i) + describe(section, i) +
                  " is part of the program (characteristics " + hex(section.characteristics) +
                  "), not an added data section; refusing to replace it");
    }
    kept[i] = false;
  }
  return kept;
}

// Where the bytes of the input file end up in the output. The input is
// [headers][body: kept section data][dropped: replaced sections at the end]
// [tail: symbol and string tables, ...][certificate table]; the output is
// [grown headers][body][new sections][tail].
struct FileMove {
  std::uint64_t headers_end = 0;  // old SizeOfHeaders
  std::uint64_t body_end = 0;     // end of the kept sections' raw data
  std::uint64_t tail_start = 0;   // end of all sections' raw data
  std::uint64_t tail_end = 0;     // end of the file, or start of the certificate table
  std::uint64_t header_growth = 0;
  std::uint64_t new_data_start = 0;   // in the output
  std::uint64_t new_tail_start = 0;   // in the output
  std::vector<const Section*> holes;  // replaced sections inside the body

  std::uint64_t map(std::uint64_t offset, const std::string& what) const {
    if (offset < headers_end) return offset;
    if (offset < body_end) {
      for (const Section* hole : holes) {
        if (offset >= hole->pointer_to_raw_data && offset < raw_end(*hole)) {
          throw Error(what + " " + hex(offset) + " points into replaced section " + hole->name);
        }
      }
      return offset + header_growth;
    }
    if (offset >= tail_start && offset <= tail_end) return offset - tail_start + new_tail_start;
    throw Error(what + " " + hex(offset) +
                " points into replaced section data or the certificate table");
  }
};

std::uint64_t raw_size(const NewSection& section, const Image& image) {
  return align_up(section.data.size(), image.file_alignment);
}

FileMove plan_file_move(std::span<const std::uint8_t> file, const Image& image,
                        const std::vector<bool>& kept, std::uint64_t headers_size,
                        const std::vector<NewSection>& added) {
  FileMove move;
  move.headers_end = image.size_of_headers;
  move.body_end = move.headers_end;
  move.tail_start = move.headers_end;
  for (std::size_t i = 0; i < image.sections.size(); ++i) {
    const Section& section = image.sections[i];
    if (section.size_of_raw_data == 0) continue;
    move.tail_start = std::max(move.tail_start, raw_end(section));
    if (kept[i]) move.body_end = std::max(move.body_end, raw_end(section));
  }
  for (std::size_t i = 0; i < image.sections.size(); ++i) {
    const Section& section = image.sections[i];
    if (!kept[i] && section.size_of_raw_data != 0 && raw_end(section) <= move.body_end) {
      move.holes.push_back(&section);
    }
  }
  move.tail_end = file.size();
  if (image.is_signed()) {
    const DataDirectory& certificates = image.data_directories[kDirectorySecurity];
    if (certificates.virtual_address < move.tail_start ||
        std::uint64_t{certificates.virtual_address} + certificates.size != file.size()) {
      throw Error(
          at(certificates.virtual_address) +
          "the certificate table (security directory) is not at the end of the file, after all "
          "section data; cannot drop the signature");
    }
    move.tail_end = certificates.virtual_address;
    const std::uint64_t symbols_end = std::uint64_t{image.pointer_to_symbol_table} +
                                      kSymbolSize * image.number_of_symbols +
                                      image.string_table_size;
    if (image.pointer_to_symbol_table != 0 && symbols_end > move.tail_end) {
      throw Error(at(image.pointer_to_symbol_table) +
                  "the COFF symbol and string tables overlap the certificate table at " +
                  hex(move.tail_end));
    }
  }
  move.header_growth = headers_size - image.size_of_headers;
  move.new_data_start = align_up(move.body_end + move.header_growth, image.file_alignment);
  std::uint64_t new_data_size = 0;
  for (const NewSection& section : added) new_data_size += raw_size(section, image);
  move.new_tail_start = move.new_data_start + new_data_size;
  return move;
}

void write_section_header(std::uint8_t* header, const NewSection& section, std::uint32_t rva,
                          std::uint32_t raw_pointer, const Image& image) {
  std::memset(header, 0, kSectionHeaderSize);
  std::memcpy(header, section.name.data(), section.name.size());
  store32(header + 8, static_cast<std::uint32_t>(section.data.size()));
  store32(header + 12, rva);
  store32(header + 16, static_cast<std::uint32_t>(raw_size(section, image)));
  store32(header + kSecPointerToRawData, raw_pointer);
  store32(header + 36, kAddedSectionCharacteristics);
}

void move_pointer(std::uint8_t* field, const FileMove& move, const std::string& what) {
  const std::uint32_t old = load32(field);
  if (old != 0) store32(field, static_cast<std::uint32_t>(move.map(old, what)));
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
void check_header_room(std::span<const std::uint8_t> file, const Image& image,
                       std::size_t section_count) {
  const std::uint64_t old_end =
      image.section_table_offset + kSectionHeaderSize * image.sections.size();
  const std::uint64_t new_end = image.section_table_offset + kSectionHeaderSize * section_count;
  for (std::uint64_t offset = old_end;
       offset < std::min<std::uint64_t>(new_end, image.size_of_headers); ++offset) {
    if (file[offset] != 0) {
      throw Error(at(offset) + "the header area after the section table is in use; no room for " +
                  std::to_string(section_count) + " section headers");
    }
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

}  // namespace

AddResult add_sections(std::span<const std::uint8_t> file, const std::vector<NewSection>& added) {
  const Image image = parse(file);
  check_new_sections(added);
  const std::vector<bool> kept = sections_to_keep(image, added);
  const auto kept_count = static_cast<std::size_t>(std::count(kept.begin(), kept.end(), true));
  const std::size_t section_count = kept_count + added.size();
  if (section_count > UINT16_MAX) throw Error("add_sections: more than 65535 sections");
  check_header_room(file, image, section_count);

  AddResult result;
  if (image.is_signed()) {
    result.warnings.push_back(
        "dropped the Authenticode signature (security directory): it cannot stay valid once "
        "sections are "
        "added; sign the output again");
  }

  // Virtual addresses. A replaced section's RVA marks where SizeOfImage stood
  // before it was added, so that replacing is idempotent.
  std::uint64_t floor = image.size_of_image;
  std::uint64_t removed_initialized = 0;
  for (std::size_t i = 0; i < image.sections.size(); ++i) {
    if (kept[i]) continue;
    floor = std::min<std::uint64_t>(floor, image.sections[i].virtual_address);
    if (image.sections[i].characteristics & kScnCntInitializedData) {
      removed_initialized += image.sections[i].size_of_raw_data;
    }
  }
  std::vector<std::uint32_t> rvas;
  std::uint64_t next_rva = first_free_rva(image, floor, kept);
  for (const NewSection& section : added) {
    if (next_rva + section.data.size() > UINT32_MAX) {
      throw Error("new section \"" + section.name + "\" at RVA " + hex(next_rva) +
                  " would end beyond 4 GiB");
    }
    rvas.push_back(static_cast<std::uint32_t>(next_rva));
    next_rva = align_up(next_rva + section.data.size(), image.section_alignment);
  }
  if (next_rva > UINT32_MAX) throw Error("SizeOfImage " + hex(next_rva) + " would exceed 4 GiB");

  // File layout.
  const std::uint64_t headers_size = headers_size_for(image, section_count);
  const FileMove move = plan_file_move(file, image, kept, headers_size, added);
  const std::uint64_t output_size = move.new_tail_start + (move.tail_end - move.tail_start);
  if (output_size > UINT32_MAX) throw Error("the output would exceed 4 GiB");

  std::vector<std::uint8_t>& out = result.file;
  out.reserve(output_size);
  out.insert(out.end(), file.begin(), file.begin() + static_cast<std::ptrdiff_t>(move.headers_end));
  out.resize(headers_size, 0);
  out.insert(out.end(), file.begin() + static_cast<std::ptrdiff_t>(move.headers_end),
             file.begin() + static_cast<std::ptrdiff_t>(move.body_end));
  for (const Section* hole : move.holes) {
    std::fill_n(
        out.begin() + static_cast<std::ptrdiff_t>(hole->pointer_to_raw_data + move.header_growth),
        hole->size_of_raw_data, 0);
  }
  out.resize(move.new_data_start, 0);
  std::vector<std::uint32_t> raw_pointers;
  for (const NewSection& section : added) {
    raw_pointers.push_back(static_cast<std::uint32_t>(out.size()));
    out.insert(out.end(), section.data.begin(), section.data.end());
    out.resize(raw_pointers.back() + raw_size(section, image), 0);
  }
  out.insert(out.end(), file.begin() + static_cast<std::ptrdiff_t>(move.tail_start),
             file.begin() + static_cast<std::ptrdiff_t>(move.tail_end));

  // Section table: kept headers (raw data pointers moved), then the new ones,
  // then zeros where old headers were.
  std::uint8_t* header = out.data() + image.section_table_offset;
  for (std::size_t i = 0; i < image.sections.size(); ++i) {
    if (!kept[i]) continue;
    std::memcpy(header, file.data() + image.section_table_offset + kSectionHeaderSize * i,
                kSectionHeaderSize);
    const std::string what = describe(image.sections[i], i);
    if (image.sections[i].size_of_raw_data != 0)
      move_pointer(header + kSecPointerToRawData, move, what + " PointerToRawData");
    move_pointer(header + kSecPointerToRelocations, move, what + " PointerToRelocations");
    move_pointer(header + kSecPointerToLinenumbers, move, what + " PointerToLinenumbers");
    header += kSectionHeaderSize;
  }
  for (std::size_t i = 0; i < added.size(); ++i) {
    write_section_header(header, added[i], rvas[i], raw_pointers[i], image);
    header += kSectionHeaderSize;
  }
  if (section_count < image.sections.size()) {
    std::fill_n(header, kSectionHeaderSize * (image.sections.size() - section_count), 0);
  }

  // COFF and optional header fields.
  std::uint8_t* coff = out.data() + image.coff_header_offset;
  store16(coff + kCoffNumberOfSections, static_cast<std::uint16_t>(section_count));
  move_pointer(coff + kCoffPointerToSymbolTable, move, "PointerToSymbolTable");
  std::uint8_t* opt = out.data() + image.optional_header_offset;
  std::uint64_t initialized =
      image.size_of_initialized_data -
      std::min<std::uint64_t>(removed_initialized, image.size_of_initialized_data);
  for (const NewSection& section : added) initialized += raw_size(section, image);
  store32(opt + kOptSizeOfInitializedData,
          static_cast<std::uint32_t>(std::min<std::uint64_t>(initialized, UINT32_MAX)));
  store32(opt + kOptSizeOfImage, static_cast<std::uint32_t>(next_rva));
  store32(opt + kOptSizeOfHeaders, static_cast<std::uint32_t>(headers_size));
  if (image.is_signed()) {
    std::memset(
        opt + directory_entry_offset(image, kDirectorySecurity) - image.optional_header_offset, 0,
        kDataDirectorySize);
  }
  if (image.debug_directory_offset != 0) {
    const std::uint64_t directory = move.map(image.debug_directory_offset, "debug directory");
    for (std::size_t i = 0; i < image.debug_entries.size(); ++i) {
      move_pointer(out.data() + directory + kDebugEntrySize * i + kDebugPointerToRawData, move,
                   "debug directory entry PointerToRawData");
    }
  }
  store32(opt + kOptCheckSum, compute_checksum(out, image));
  return result;
}

}  // namespace xbb::pe
