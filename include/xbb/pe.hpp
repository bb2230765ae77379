#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "xbb/byte_sink.hpp"

// PE32+ images (xen.efi): reading the headers and section table, and writing
// a copy with sections added. Field names follow the PE/COFF specification.
//
// Errors: every function here throws xbb::Error with a one-line message that
// names the field and the file offset ("offset 0x80: PE signature: ..."), but
// not the file's path, which only the caller knows: wrap it as
// `xbb::Error(path, e.what())`.
namespace xbb::pe {

inline constexpr std::uint16_t kMachineAmd64 = 0x8664;
inline constexpr std::uint16_t kMachineArm64 = 0xaa64;
inline constexpr std::uint16_t kMachineI386 = 0x14c;

// Section characteristics (IMAGE_SCN_*).
inline constexpr std::uint32_t kScnCntCode = 0x00000020;
inline constexpr std::uint32_t kScnCntInitializedData = 0x00000040;
inline constexpr std::uint32_t kScnCntUninitializedData = 0x00000080;
inline constexpr std::uint32_t kScnMemDiscardable = 0x02000000;
inline constexpr std::uint32_t kScnMemExecute = 0x20000000;
inline constexpr std::uint32_t kScnMemRead = 0x40000000;
inline constexpr std::uint32_t kScnMemWrite = 0x80000000;
// What add_sections gives every section it adds: readable initialised data.
inline constexpr std::uint32_t kAddedSectionCharacteristics = kScnCntInitializedData | kScnMemRead;

// Data directory indices.
inline constexpr std::size_t kDirectorySecurity = 4;
inline constexpr std::size_t kDirectoryBaseRelocation = 5;
inline constexpr std::size_t kDirectoryDebug = 6;

inline constexpr std::uint32_t kDebugTypeCodeView = 2;

// Optional header Subsystem (IMAGE_SUBSYSTEM_*): firmware starts only EFI
// applications as boot loaders.
inline constexpr std::uint16_t kSubsystemEfiApplication = 10;

// How much of a file check_prefix() needs: the headers of any xen.efi lie in
// its first 64 KiB.
inline constexpr std::size_t kHeaderPrefixSize = 64 * 1024;

// The contract the rest of the program relies on; pe.cpp owns the details.

struct Section {
  std::string name;  // long names resolved through the COFF string table
  std::uint32_t virtual_size = 0;
  std::uint32_t virtual_address = 0;  // RVA
  std::uint32_t size_of_raw_data = 0;
  std::uint32_t pointer_to_raw_data = 0;
  std::uint32_t pointer_to_relocations = 0;  // file offsets; 0 in executables
  std::uint32_t pointer_to_linenumbers = 0;
  std::uint32_t characteristics = 0;
};

// For the security directory, virtual_address is a file offset (PE spec).
struct DataDirectory {
  std::uint32_t virtual_address = 0;
  std::uint32_t size = 0;
};

// One IMAGE_DEBUG_DIRECTORY entry.
struct DebugEntry {
  std::uint32_t type = 0;  // kDebugTypeCodeView for a build id
  std::uint32_t size_of_data = 0;
  std::uint32_t address_of_raw_data = 0;  // RVA, 0 when not mapped
  std::uint32_t pointer_to_raw_data = 0;  // file offset
};

struct Image {
  std::uint16_t machine = 0;
  std::uint64_t image_base = 0;
  std::uint32_t section_alignment = 0;
  std::uint32_t file_alignment = 0;
  std::uint32_t size_of_image = 0;
  std::uint32_t size_of_headers = 0;
  std::uint32_t checksum = 0;
  std::vector<Section> sections;

  // COFF file header
  std::uint16_t characteristics = 0;
  std::uint32_t pointer_to_symbol_table = 0;  // 0 when there is none
  std::uint32_t number_of_symbols = 0;
  std::uint32_t string_table_size = 0;  // its own first 4 bytes included; 0 without a symbol table
  // Optional header
  std::uint32_t size_of_code = 0;
  std::uint32_t size_of_initialized_data = 0;
  std::uint32_t size_of_uninitialized_data = 0;
  std::uint32_t address_of_entry_point = 0;
  std::uint16_t subsystem = 0;
  std::vector<DataDirectory> data_directories;  // NumberOfRvaAndSizes entries
  std::vector<DebugEntry> debug_entries;        // from the debug directory, if any
  // Where things are in the file
  std::uint32_t coff_header_offset = 0;  // e_lfanew + 4
  std::uint32_t optional_header_offset = 0;
  std::uint32_t section_table_offset = 0;
  std::uint32_t debug_directory_offset = 0;  // file offset of the debug directory, 0 if none
  // Zero bytes right after the section table, before SizeOfHeaders or the first
  // byte in use: room for more section headers without moving anything.
  std::uint32_t header_room = 0;

  // The security directory is present and non-empty (Authenticode signature).
  bool is_signed() const;
};

// Parses a PE32+ image. Throws xbb::Error with what is wrong and at which
// offset for anything malformed, truncated, PE32 or not PE at all. An ELF
// file (Xen's multiboot build) and a gzip file are refused with a message
// saying that the bootspec must point at xen.efi.
Image parse(std::span<const std::uint8_t> file);

// "EFI application", "Windows console", ... for a Subsystem value; "unknown"
// for values the PE specification does not define.
std::string subsystem_name(std::uint16_t subsystem);

// Throws xbb::Error unless the image is an EFI application, e.g.
// "offset 0xdc: Subsystem 3 (Windows console): not an EFI application (Subsystem 10)".
void check_efi_application(const Image& image);

// Whether a file of `file_size` bytes whose first bytes are `prefix` (at most
// kHeaderPrefixSize of them, or the whole file) is a PE32+ EFI application, so
// that a wrong file is refused before it is read whole: the DOS header and its
// e_lfanew, the PE signature, the COFF file header and the optional header
// (Magic PE32+, alignments, Subsystem). Throws xbb::Error with the message
// parse() and check_efi_application() give for the same defect (ELF and gzip
// files included); a header reaching beyond a partial prefix is an error too.
void check_prefix(std::span<const std::uint8_t> prefix, std::uint64_t file_size);

// The headers and section table of a file of `file_size` bytes from its
// first bytes `prefix` (SizeOfHeaders of them are enough): what parse()
// checks of them and of where each section lies, without reading the symbol
// table, the debug directory or any section's data. A long section name
// ("/4", in the string table) is kept as it stands. Throws xbb::Error as
// parse() does, and for a section table reaching beyond `prefix`.
Image parse_headers(std::span<const std::uint8_t> prefix, std::uint64_t file_size);

// The file offset and length of the initialised bytes of a section (what
// section_contents() returns), or nullopt when the image has no section of
// that name.
struct Extent {
  std::uint64_t offset = 0;
  std::uint64_t size = 0;
};
std::optional<Extent> section_extent(const Image& image, const std::string& name);

struct NewSection {
  std::string name;  // e.g. ".config"; an existing section of that name is replaced
  std::vector<std::uint8_t> data;
};

// A new section known by the size of its contents only (see output_size).
struct NewSectionSize {
  std::string name;
  std::uint64_t size = 0;
};

struct AddOptions {
  // Leave out the DISCARDABLE sections whose name starts with ".debug_": DWARF
  // no loader reads (26 of the 29 MB of Debian 13's Xen 4.20 image).
  bool drop_debug_sections = false;
  // End the output on a quadword with zeros (counted in the CheckSum): a
  // signer appends its certificate table there, padding an image that does
  // not, so that the bytes signed are then the bytes made.
  bool pad_for_signing = false;
};

struct AddResult {
  std::vector<std::uint8_t> file;
  std::vector<std::string> warnings;  // e.g. a dropped Authenticode signature
};

// A copy of `file` with `sections` added and, if `options` say so, the debug
// sections left out. With nothing to add and nothing to leave out, the copy is
// byte for byte the input (a signature stays valid).
//
// - New sections go after the highest section that stays (debug and
//   discardable ones included), each aligned to SectionAlignment, never below
//   SizeOfImage or, if sections are removed, the lowest removed section's RVA
//   (a removed section gives its address space back). SizeOfImage ends with
//   the last of them. Xen looks for them within SizeOfImage and wants them
//   above the hypervisor's own sections (xen/common/efi/pe.c,
//   docs/misc/efi.pandoc).
// - Names are 1 to 8 characters (executables have no string table for section
//   names); contents must not be empty. Characteristics are
//   kAddedSectionCharacteristics.
// - Removed sections (replaced or left out) give back their raw data: the
//   data after them moves up by whole FileAlignments. New raw data goes after
//   the last kept section's raw data (FileAlignment aligned); whatever followed
//   all section data (the COFF symbol and string tables) moves behind it.
// - When the header area has no room for the new section headers,
//   SizeOfHeaders grows (a FileAlignment multiple) and all raw data moves down.
// - PointerToRawData (sections, debug directory entries), PointerToRelocations,
//   PointerToLinenumbers and PointerToSymbolTable follow their data; a pointer
//   into removed data is an error.
// - A section already present under a new section's name is removed first (its
//   header and raw data), and SizeOfImage is taken back to where it started,
//   so that add_sections(add_sections(x, A), A) == add_sections(x, A) byte for
//   byte. Only sections that look like ones this function adds (exactly
//   kAddedSectionCharacteristics, no data directory or entry point inside) can
//   be replaced; anything else is an error. A debug section holding a data
//   directory or the entry point is not left out but refused.
// - The COFF symbol and string tables stay (long section names live there);
//   symbols keep their places, their section numbers follow the section table,
//   and those of left-out sections become IMAGE_SYM_DEBUG.
// - Authenticode: a signature cannot stay valid once sections change. We drop
//   it (zero the security directory, cut the certificate table off the end of
//   the file) and say so in `warnings`, rather than refuse, because the output
//   is meant to be signed again downstream (sbsign, Lanzaboote): refusing would
//   make every signed Xen build unusable.
// - SizeOfImage, SizeOfHeaders, SizeOfInitializedData (left-out debug sections
//   are not subtracted: GNU ld never counts them), NumberOfSections and
//   CheckSum are updated; everything else is copied unchanged.
//
// add_sections collects what Output::write writes (below): the two cannot
// differ.
AddResult add_sections(std::span<const std::uint8_t> file, const std::vector<NewSection>& sections,
                       const AddOptions& options = {});

// The size in bytes of the file add_sections(file, sections, options) returns,
// from the parsed `image` of that file, its size and the sizes of the new
// sections' contents; computed by the same code as add_sections' layout.
// Throws what add_sections throws for the same input.
std::uint64_t output_size(const Image& image, std::uint64_t file_size,
                          const std::vector<NewSectionSize>& sections,
                          const AddOptions& options = {});

// A new section's contents, given in pieces: a SectionContents passes the
// bytes to `deliver` in order, in pieces of any size, and may be asked for them
// more than once.
using Deliver = std::function<void(std::span<const std::uint8_t> piece)>;
using SectionContents = std::function<void(const Deliver& deliver)>;

// The CheckSum's sums of pieces of one input file, kept from one Output to
// the next made from the same bytes in memory: images made from one xen.efi
// carry most of its bytes unchanged, whose sum (which depends only on the
// bytes, placed at an even offset, as the layout places them) is then
// computed once. It belongs to those bytes: drop it with them.
class InputSums {
 public:
  // The sum kept for the `size` bytes at `start`, if any.
  std::optional<std::uint64_t> find(const std::uint8_t* start, std::size_t size) const;
  void keep(const std::uint8_t* start, std::size_t size, std::uint64_t sum);

 private:
  std::map<std::pair<const std::uint8_t*, std::size_t>, std::uint64_t> sums_;
};

// The file add_sections(file, sections, options) returns, laid out from the
// sizes of the new sections alone and written on demand, in order, so that
// nothing holds more of it than the input file (which the caller holds) and
// one piece of a new section at a time. The layout is add_sections' and
// output_size's (one plan_layout in pe.cpp serves all three).
class Output {
 public:
  // Throws what add_sections throws for the same input. `image` is
  // parse(file); both must outlive this object.
  Output(std::span<const std::uint8_t> file, const Image& image,
         const std::vector<NewSectionSize>& sections, const AddOptions& options = {});
  ~Output();
  Output(const Output&) = delete;
  Output& operator=(const Output&) = delete;

  std::uint64_t size() const;
  // What add_sections would say about the output (a dropped signature).
  const std::vector<std::string>& warnings() const;

  // Writes the output into `file` with one pass over `contents` (the bytes of
  // `sections`, in the same order): every byte in order with the CheckSum
  // field zero, then, since the CheckSum sums the whole file, the CheckSum
  // over FileSink::write_at.
  // `sums`: kept sums of the input's pieces (see InputSums), or nullptr.
  void write(const std::vector<SectionContents>& contents, FileSink& file,
             InputSums* sums = nullptr) const;

  // Streams the output into `sink` strictly in order (for a digest, where
  // nothing can be rewritten): a first pass over `contents` sums them for the
  // CheckSum, the second streams them. Contents that differ between the two
  // passes are an error.
  void stream(const std::vector<SectionContents>& contents, ByteSink& sink,
              InputSums* sums = nullptr) const;

  // Both throw Error, after writing part of the output, for contents that
  // deliver more bytes than their section's declared size (at the first byte
  // too many) or fewer; errors of `contents` and of the sink pass through.

 private:
  struct Parts;
  std::uint32_t emit(const std::vector<SectionContents>& contents, ByteSink& sink,
                     std::uint32_t checksum_field, std::vector<std::uint64_t>& section_sums,
                     InputSums* sums) const;

  std::unique_ptr<const Parts> parts_;
};

// A file held in a std::string, as the bytes the functions here take.
inline std::span<const std::uint8_t> bytes_of(std::string_view file) {
  return {reinterpret_cast<const std::uint8_t*>(file.data()), file.size()};
}

// The initialised bytes of the named section (VirtualSize bytes, capped at
// SizeOfRawData; SizeOfRawData bytes when VirtualSize is 0), or an empty
// vector when the image has no section of that name.
std::vector<std::uint8_t> section_contents(std::span<const std::uint8_t> file, const Image& image,
                                           const std::string& name);

// The RVA add_sections gives the first section it adds to `image` (when no
// section is replaced or left out): the end of the highest section (VirtualAddress +
// VirtualSize, or SizeOfRawData when VirtualSize is 0), never below
// SizeOfImage, rounded up to SectionAlignment. Computed in 64 bits; throws when
// the result does not fit in 32 bits.
std::uint32_t next_section_rva(const Image& image);
// The same as a virtual address: ImageBase + next_section_rva(image).
std::uint64_t next_section_vma(const Image& image);

// The PE checksum of `file` (16-bit one's-complement-style sum with carries
// folded, the CheckSum field itself counted as zero, plus the file length), as
// the firmware and signing tools compute it.
std::uint32_t compute_checksum(std::span<const std::uint8_t> file, const Image& image);

// The build id Xen reports: the 16-byte signature of the CodeView (RSDS)
// record the debug directory points at, as lowercase hex in file byte order.
// Empty when there is none.
std::string build_id(std::span<const std::uint8_t> file, const Image& image);

}  // namespace xbb::pe
