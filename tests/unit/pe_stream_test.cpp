// pe::Output, add_sections' output laid out from sizes and written in order:
// what it writes into a file (one pass, the CheckSum last) and what it streams
// (two passes) are add_sections' bytes, whatever pieces the contents come in,
// on the real Xen images and the synthetic ones; contents of the wrong size
// are refused, and leave no temporary on the ESP.
#include <gtest/gtest.h>

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "esp_fixture.hpp"
#include "pe_builder.hpp"
#include "pe_test_util.hpp"
#include "xbb/digest.hpp"
#include "xbb/error.hpp"
#include "xbb/esp.hpp"
#include "xbb/pe.hpp"

namespace {

using xbb::test::error_of;

namespace fs = std::filesystem;
using Bytes = std::vector<std::uint8_t>;
using xbb::pe::NewSection;
using xbb::pe::SectionContents;
using xbb::test::TempDir;

Bytes bytes(const std::string& text) { return {text.begin(), text.end()}; }

std::uint32_t load32(const Bytes& file, std::size_t offset) {
  return file[offset] | file[offset + 1] << 8 | file[offset + 2] << 16 |
         static_cast<std::uint32_t>(file[offset + 3]) << 24;
}

// The offset of the CheckSum field, read here without src/pe.cpp.
std::size_t checksum_offset(const Bytes& file) { return load32(file, 0x3c) + 4 + 20 + 64; }

// Collects the bytes streamed into it; it cannot rewrite.
class Collect : public xbb::ByteSink {
 public:
  void write(std::span<const std::uint8_t> piece) override {
    bytes.insert(bytes.end(), piece.begin(), piece.end());
  }
  Bytes bytes;
};

// Contents that give `data` in pieces of `piece` bytes, counting how often
// they are asked for.
SectionContents in_pieces(const Bytes& data, std::size_t piece, int* asked = nullptr) {
  return [&data, piece, asked](const xbb::pe::Deliver& deliver) {
    if (asked) ++*asked;
    for (std::size_t offset = 0; offset < data.size(); offset += piece)
      deliver(std::span(data).subspan(offset, std::min(piece, data.size() - offset)));
  };
}

// Contents that give `data` in pieces of 1, 2, 7, 4093, 65537 and 1 MiB + 1
// bytes in turn, from the `phase`th of these sizes: odd and even pieces, pieces
// smaller and larger than the writer's own windows.
SectionContents in_mixed_pieces(const Bytes& data, std::size_t phase) {
  return [&data, phase](const xbb::pe::Deliver& deliver) {
    static constexpr std::size_t kSizes[] = {1, 2, 7, 4093, 65537, (1 << 20) + 1};
    std::size_t turn = phase;
    for (std::size_t offset = 0; offset < data.size();) {
      const std::size_t size = std::min(kSizes[turn++ % std::size(kSizes)], data.size() - offset);
      deliver(std::span(data).subspan(offset, size));
      offset += size;
    }
  };
}

std::vector<xbb::pe::NewSectionSize> sizes_of(const std::vector<NewSection>& sections) {
  std::vector<xbb::pe::NewSectionSize> sizes;
  for (const NewSection& section : sections) sizes.push_back({section.name, section.data.size()});
  return sizes;
}

std::vector<SectionContents> contents_of(const std::vector<NewSection>& sections,
                                         std::size_t phase) {
  std::vector<SectionContents> contents;
  for (const NewSection& section : sections)
    contents.push_back(in_mixed_pieces(section.data, phase++));
  return contents;
}

// An image made with sbsign from the real Xen 4.17 image.
Bytes signed_xen417(const TempDir& dir) {
  const auto checked = [](const std::vector<std::string>& argv) {
    const xbb::test::RunResult result = xbb::test::run(argv);
    if (result.exit_code != 0) throw std::runtime_error(argv[0] + " failed: " + result.err);
  };
  checked({"openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
           (dir / "key.pem").string(), "-out", (dir / "cert.pem").string(), "-subj", "/CN=xbb test",
           "-days", "1"});
  checked({"sbsign", "--key", (dir / "key.pem").string(), "--cert", (dir / "cert.pem").string(),
           "--output", (dir / "signed.efi").string(), xbb::test::xen417_efi().string()});
  return xbb::test::read_binary(dir / "signed.efi");
}

struct Input {
  std::string name;
  Bytes file;
};

// For one input, sections and options: the file Output::write writes through
// Esp::write_atomic, and the bytes Output::stream gives, with contents in
// pieces of many sizes, are add_sections' bytes; its CheckSum is the one the
// test computes, unless the output is the input itself. So are they when
// made with `sums` (see InputSums), kept from the outputs made before from the
// same input (other sections, other options: its pieces at other places).
void expect_same_bytes_everywhere(xbb::Esp& esp, const Input& input,
                                  const std::vector<NewSection>& sections, bool drop_debug,
                                  xbb::pe::InputSums& sums) {
  SCOPED_TRACE(input.name + (drop_debug ? ", debug dropped" : ", debug kept") + ", " +
               std::to_string(sections.size()) + " sections");
  const xbb::pe::AddResult expected = xbb::pe::add_sections(input.file, sections, {drop_debug});
  const xbb::pe::Image image = xbb::pe::parse(input.file);
  const xbb::pe::Output output(input.file, image, sizes_of(sections), {drop_debug});
  EXPECT_EQ(output.size(), expected.file.size());
  EXPECT_EQ(output.warnings(), expected.warnings);
  if (expected.file == input.file) {
    EXPECT_TRUE(sections.empty());
  } else {
    EXPECT_EQ(load32(expected.file, checksum_offset(expected.file)),
              xbb::test::reference_checksum(expected.file));
  }

  esp.write_atomic("EFI/xen/out.efi",
                   [&](xbb::EspFile& file) { output.write(contents_of(sections, 0), file); });
  EXPECT_TRUE(xbb::test::read_binary(esp.root() / "EFI/xen/out.efi") == expected.file);

  Collect streamed;
  output.stream(contents_of(sections, 3), streamed);
  EXPECT_TRUE(streamed.bytes == expected.file);

  for (int time = 0; time < 2; ++time) {
    esp.write_atomic("EFI/xen/out.efi", [&](xbb::EspFile& file) {
      output.write(contents_of(sections, 1), file, &sums);
    });
    EXPECT_TRUE(xbb::test::read_binary(esp.root() / "EFI/xen/out.efi") == expected.file)
        << "written with sums kept, time " << time;
    Collect streamed_with_sums;
    output.stream(contents_of(sections, 2), streamed_with_sums, &sums);
    EXPECT_TRUE(streamed_with_sums.bytes == expected.file) << "streamed with sums kept";
  }
}

TEST(PeStream, WrittenAndStreamedOutputsAreAddSectionsOutputs) {
  const TempDir dir;
  const esp_test::Tmpfs esp_folder("size=256m");  // many files written and flushed
  xbb::Esp esp(esp_folder.path());
  std::vector<Input> inputs = {
      {"Xen 4.17", xbb::test::read_binary(xbb::test::xen417_efi())},
      {"Xen 4.20", xbb::test::read_binary(xbb::test::xen420_efi())},
      {"Xen 4.17 signed", signed_xen417(dir)},
  };
  for (auto& [name, file] : xbb::test::fuzz_seeds()) {
    if (name != "pe32.efi") inputs.push_back({"synthetic " + name, file});
  }
  const Bytes config = bytes("[global]\ndefault=xen\n\n[xen]\noptions=console=vga\n");
  const Bytes kernel =
      xbb::test::read_binary(xbb::test::deps_file("linux-image/boot/vmlinuz-6.1.0-57-amd64"));
  const Bytes ramdisk = xbb::test::pattern(3 * 1024 * 1024 + 5, 9);
  const std::vector<std::vector<NewSection>> section_sets = {
      {},
      {{".config", config}},
      {{".config", config}, {".kernel", kernel}, {".ramdisk", ramdisk}},
      {{".a", Bytes(1, 0xa5)}, {".b", Bytes(3, 0x5a)}},
  };

  for (const Input& input : inputs) {
    xbb::pe::InputSums sums;  // of this input's bytes, across its outputs
    for (bool drop_debug : {false, true}) {
      for (const auto& sections : section_sets)
        expect_same_bytes_everywhere(esp, input, sections, drop_debug, sums);
      // Replacing sections added before (header room, SizeOfImage taken back).
      const Input added{input.name + " with sections added",
                        xbb::pe::add_sections(input.file, section_sets[2], {drop_debug}).file};
      xbb::pe::InputSums added_sums;
      expect_same_bytes_everywhere(esp, added, {{".ramdisk", config}, {".config", ramdisk}},
                                   drop_debug, added_sums);
    }
  }
}

// 64 MiB of bytes that are a function of their offset, made a piece at a time.
constexpr std::uint64_t kLargeSize = (64ull << 20) + 3;

std::uint8_t large_byte(std::uint64_t offset) {
  return static_cast<std::uint8_t>((offset * 2654435761u) >> 13 ^ offset >> 20);
}

SectionContents large_contents() {
  return [](const xbb::pe::Deliver& deliver) {
    Bytes piece(1 << 20);
    for (std::uint64_t offset = 0; offset < kLargeSize; offset += piece.size()) {
      const std::size_t size =
          static_cast<std::size_t>(std::min<std::uint64_t>(piece.size(), kLargeSize - offset));
      for (std::size_t i = 0; i < size; ++i) piece[i] = large_byte(offset + i);
      deliver(std::span(piece).first(size));
    }
  };
}

TEST(PeStream, ALargeSectionIsWrittenAndStreamedAPieceAtATime) {
  const TempDir dir;
  fs::create_directory(dir / "esp");
  xbb::Esp esp(dir / "esp");
  const Bytes file = xbb::test::read_binary(xbb::test::xen420_efi());
  const Bytes config = bytes("[global]\ndefault=xen\n");
  const xbb::pe::Image image = xbb::pe::parse(file);
  const xbb::pe::Output output(file, image, {{".config", config.size()}, {".ramdisk", kLargeSize}},
                               {true});

  esp.write_atomic("EFI/xen/large.efi", [&](xbb::EspFile& out) {
    output.write({in_pieces(config, 5), large_contents()}, out);
  });
  xbb::Sha256Sink streamed;
  output.stream({in_pieces(config, 5), large_contents()}, streamed);

  const Bytes written = xbb::test::read_binary(dir / "esp/EFI/xen/large.efi");
  EXPECT_EQ(written.size(), output.size());
  EXPECT_EQ(load32(written, checksum_offset(written)), xbb::test::reference_checksum(written));
  EXPECT_EQ(streamed.hex(),
            xbb::sha256_hex({reinterpret_cast<const char*>(written.data()), written.size()}));
  Bytes large(kLargeSize);
  for (std::uint64_t i = 0; i < kLargeSize; ++i) large[i] = large_byte(i);
  EXPECT_TRUE(
      xbb::pe::add_sections(file, {{".config", config}, {".ramdisk", large}}, {true}).file ==
      written);
}

std::vector<std::string> names_in(const fs::path& folder) {
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(folder)) names.push_back(entry.path().filename());
  return names;
}

TEST(PeStream, ContentsOfTheWrongSizeAreRefusedAndLeaveNoTemporary) {
  const TempDir dir;
  fs::create_directories(dir / "esp/EFI/xen");
  xbb::test::write_binary(dir / "esp/EFI/xen/xen.efi", bytes("old image"));
  xbb::Esp esp(dir / "esp");
  const Bytes file = xbb::test::read_binary(xbb::test::xen417_efi());
  const xbb::pe::Image image = xbb::pe::parse(file);
  const xbb::pe::Output output(file, image, {{".config", 10}, {".ramdisk", 5}});
  const Bytes ten = bytes("0123456789");
  const Bytes nine = bytes("012345678");
  const Bytes eleven = bytes("0123456789a");
  const Bytes five = bytes("abcde");

  const auto write = [&](const Bytes& config, std::size_t piece) {
    return error_of([&] {
      esp.write_atomic("EFI/xen/xen.efi", [&](xbb::EspFile& out) {
        output.write({in_pieces(config, piece), in_pieces(five, 1)}, out);
      });
    });
  };
  const auto stream = [&](const Bytes& config) {
    Collect sink;
    return error_of([&] { output.stream({in_pieces(config, 4), in_pieces(five, 1)}, sink); });
  };
  const std::string more =
      "new section \".config\": its contents give more than the 10 bytes declared";
  const std::string fewer = "new section \".config\": its contents give 9 of the 10 bytes declared";
  EXPECT_EQ(write(eleven, 1), more);
  EXPECT_EQ(write(eleven, 11), more);
  EXPECT_EQ(write(nine, 2), fewer);
  EXPECT_EQ(stream(eleven), more);
  EXPECT_EQ(stream(nine), fewer);
  EXPECT_EQ(write(ten, 3), "no error");

  Bytes expected = xbb::pe::add_sections(file, {{".config", ten}, {".ramdisk", five}}).file;
  EXPECT_TRUE(xbb::test::read_binary(dir / "esp/EFI/xen/xen.efi") == expected);
  EXPECT_EQ(names_in(dir / "esp/EFI/xen"), std::vector<std::string>{"xen.efi"});
}

TEST(PeStream, WriteAsksForContentsOnceAndStreamTwiceRefusingAChange) {
  const Bytes file = xbb::test::read_binary(xbb::test::xen417_efi());
  const xbb::pe::Image image = xbb::pe::parse(file);
  const Bytes first = bytes("kernel one");
  const Bytes second = bytes("kernel two");
  const xbb::pe::Output output(file, image, {{".config", 3}, {".kernel", first.size()}});
  const Bytes config = bytes("cfg");

  int asked = 0;
  Collect written;
  struct : xbb::FileSink {
    void write(std::span<const std::uint8_t> piece) override {
      bytes.insert(bytes.end(), piece.begin(), piece.end());
    }
    void write_at(std::uint64_t offset, std::span<const std::uint8_t> piece) override {
      std::copy(piece.begin(), piece.end(), bytes.begin() + static_cast<std::ptrdiff_t>(offset));
    }
    Bytes bytes;
  } in_memory;
  output.write({in_pieces(config, 1), in_pieces(first, 3, &asked)}, in_memory);
  EXPECT_EQ(asked, 1);
  asked = 0;
  output.stream({in_pieces(config, 1), in_pieces(first, 3, &asked)}, written);
  EXPECT_EQ(asked, 2);
  EXPECT_TRUE(written.bytes == in_memory.bytes);

  int calls = 0;
  const SectionContents changing = [&](const xbb::pe::Deliver& deliver) {
    deliver(++calls == 1 ? first : second);
  };
  Collect sink;
  EXPECT_EQ(error_of([&] {
              output.stream({in_pieces(config, 1), changing}, sink);
            }),
            "new section \".kernel\": its contents changed between the pass that summed them for "
            "the CheckSum and the pass that streamed them");
}

}  // namespace
