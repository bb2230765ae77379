#include "xbb/elf_image.hpp"

#include <elf.h>
#include <gelf.h>
#include <libelf.h>
#include <zlib.h>

#include <algorithm>
#include <memory>

#include "hex.hpp"
#include "xbb/error.hpp"

namespace xbb::elf {
namespace {

std::string libelf_error(const std::string& what) {
  const char* reason = elf_errmsg(-1);
  return "ELF: " + what + ": " + (reason != nullptr ? reason : "unknown libelf error");
}

struct ElfCloser {
  void operator()(Elf* elf) const { elf_end(elf); }
};

struct InflateStream {
  z_stream stream{};
  InflateStream() {
    if (inflateInit2(&stream, 16 + MAX_WBITS) != Z_OK) throw Error("gzip: cannot initialise zlib");
  }
  ~InflateStream() { inflateEnd(&stream); }
  InflateStream(const InflateStream&) = delete;
  InflateStream& operator=(const InflateStream&) = delete;
};

std::string gnu_build_id(Elf_Data* data) {
  GElf_Nhdr note;
  std::size_t offset = 0;
  std::size_t name_offset = 0;
  std::size_t desc_offset = 0;
  while ((offset = gelf_getnote(data, offset, &note, &name_offset, &desc_offset)) != 0) {
    const auto* bytes = static_cast<const std::uint8_t*>(data->d_buf);
    if (note.n_type == NT_GNU_BUILD_ID && note.n_namesz == 4 &&
        std::equal(bytes + name_offset, bytes + name_offset + 4, "GNU")) {
      return hex_bytes(bytes + desc_offset, note.n_descsz);
    }
  }
  return {};
}

std::vector<Section> read_sections(Elf* elf, std::string& build_id) {
  std::size_t names_index = 0;
  if (elf_getshdrstrndx(elf, &names_index) != 0) throw Error(libelf_error("section name table"));
  std::vector<Section> sections;
  for (Elf_Scn* scn = elf_nextscn(elf, nullptr); scn != nullptr; scn = elf_nextscn(elf, scn)) {
    GElf_Shdr header;
    if (gelf_getshdr(scn, &header) == nullptr)
      throw Error(libelf_error("section header " + std::to_string(elf_ndxscn(scn))));
    const char* name = elf_strptr(elf, names_index, header.sh_name);
    if (name == nullptr)
      throw Error(libelf_error("name of section " + std::to_string(elf_ndxscn(scn))));
    sections.push_back(
        {name, header.sh_type, header.sh_flags, header.sh_addr, header.sh_offset, header.sh_size});
    if (header.sh_type == SHT_NOTE && build_id.empty()) {
      Elf_Data* data = elf_getdata(scn, nullptr);
      if (data == nullptr)
        throw Error(libelf_error("contents of note section " + std::string(name)));
      build_id = gnu_build_id(data);
    }
  }
  return sections;
}

}  // namespace

bool is_elf(std::span<const std::uint8_t> file) {
  return file.size() >= SELFMAG && std::equal(file.begin(), file.begin() + SELFMAG, ELFMAG);
}

bool is_gzip(std::span<const std::uint8_t> file) {
  return file.size() >= 2 && file[0] == 0x1f && file[1] == 0x8b;
}

std::vector<std::uint8_t> gunzip(std::span<const std::uint8_t> file, std::uint64_t limit) {
  InflateStream inflater;
  z_stream& stream = inflater.stream;
  // zlib takes a non-const pointer but never writes through next_in.
  stream.next_in = const_cast<Bytef*>(file.data());
  stream.avail_in = static_cast<uInt>(std::min<std::size_t>(file.size(), UINT32_MAX));
  if (file.size() > UINT32_MAX) throw Error("gzip: compressed file larger than 4 GiB");

  std::vector<std::uint8_t> out;
  std::uint8_t chunk[1 << 16];
  for (;;) {
    stream.next_out = chunk;
    stream.avail_out = sizeof chunk;
    const int status = inflate(&stream, Z_NO_FLUSH);
    out.insert(out.end(), chunk, chunk + (sizeof chunk - stream.avail_out));
    if (out.size() > limit)
      throw Error("gzip: decompressed data larger than " + hex(limit) + " bytes");
    const std::uint64_t consumed = file.size() - stream.avail_in;
    if (status == Z_STREAM_END) {
      if (stream.avail_in == 0) return out;
      if (inflateReset(&stream) != Z_OK)
        throw Error("gzip: offset " + hex(consumed) + ": cannot reset zlib");
      continue;
    }
    if (status == Z_BUF_ERROR && stream.avail_in == 0) {
      throw Error("gzip: offset " + hex(consumed) +
                  ": compressed data ends before the end of the stream");
    }
    if (status != Z_OK) {
      throw Error("gzip: offset " + hex(consumed) + ": " +
                  (stream.msg != nullptr ? stream.msg : "corrupt data"));
    }
  }
}

std::vector<MultibootHeader> find_multiboot_headers(std::span<const std::uint8_t> file) {
  struct Version {
    int number;
    std::uint32_t magic;
    std::size_t alignment;
    std::size_t search_limit;
    std::size_t magic_fields;  // magic, then the words whose sum with it must be 0
  };
  static constexpr Version kVersions[] = {{1, 0x1BADB002, 4, 8192, 3},
                                          {2, 0xE85250D6, 8, 32768, 4}};
  const auto word = [&](std::size_t offset) {
    return static_cast<std::uint32_t>(file[offset] | file[offset + 1] << 8 |
                                      file[offset + 2] << 16 |
                                      static_cast<std::uint32_t>(file[offset + 3]) << 24);
  };
  std::vector<MultibootHeader> found;
  for (const Version& version : kVersions) {
    const std::size_t size = 4 * version.magic_fields;
    const std::size_t limit = std::min(file.size(), version.search_limit);
    for (std::size_t offset = 0; offset + size <= limit; offset += version.alignment) {
      if (word(offset) != version.magic) continue;
      std::uint32_t sum = 0;
      for (std::size_t i = 0; i < version.magic_fields; ++i) sum += word(offset + 4 * i);
      if (sum == 0) {
        found.push_back({version.number, offset});
        break;
      }
    }
  }
  return found;
}

Image parse(std::span<const std::uint8_t> file) {
  if (!is_elf(file)) throw Error("ELF: no ELF magic at offset 0x0");
  if (elf_version(EV_CURRENT) == EV_NONE) throw Error(libelf_error("library initialisation"));
  std::vector<char> copy(file.begin(), file.end());  // libelf wants a mutable buffer
  const std::unique_ptr<Elf, ElfCloser> elf(elf_memory(copy.data(), copy.size()));
  if (!elf || elf_kind(elf.get()) != ELF_K_ELF)
    throw Error(libelf_error("not a readable ELF file"));

  GElf_Ehdr header;
  if (gelf_getehdr(elf.get(), &header) == nullptr) throw Error(libelf_error("ELF header"));
  Image image;
  image.elf_class = gelf_getclass(elf.get()) == ELFCLASS64 ? 64 : 32;
  image.machine = header.e_machine;
  image.entry = header.e_entry;
  image.sections = read_sections(elf.get(), image.build_id);
  return image;
}

}  // namespace xbb::elf
