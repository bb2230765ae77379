// Is it an EFI application? The Subsystem check, and the header check made from
// a file's first bytes before it is read whole. objdump -p is the oracle for
// the Subsystem; parse() for the messages, which must be the same.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "pe_builder.hpp"
#include "pe_test_util.hpp"
#include "xbb/elf_image.hpp"
#include "xbb/error.hpp"
#include "xbb/pe.hpp"

namespace {

using xbb::test::build_pe;
using xbb::test::kOptionalOffset;

std::string error_of(auto&& action) {
  try {
    action();
  } catch (const xbb::Error& e) {
    return e.what();
  }
  return "no error";
}

std::string parse_error(const std::vector<std::uint8_t>& file) {
  return error_of([&] { xbb::pe::parse(file); });
}

// check_prefix on the first `size` bytes of `file` (all of it when shorter).
std::string prefix_error(const std::vector<std::uint8_t>& file,
                         std::size_t size = xbb::pe::kHeaderPrefixSize) {
  const std::size_t length = std::min(size, file.size());
  return error_of([&] {
    xbb::pe::check_prefix(std::span<const std::uint8_t>(file.data(), length), file.size());
  });
}

// "Subsystem\t\t00000003\t(Windows CUI)" from objdump -p, as the number.
int objdump_subsystem(const std::vector<std::uint8_t>& file) {
  const xbb::test::TempDir dir;
  xbb::test::write_binary(dir / "image.efi", file);
  const xbb::test::RunResult result =
      xbb::test::run({"objdump", "-p", (dir / "image.efi").string()});
  EXPECT_EQ(result.exit_code, 0) << result.err;
  const auto at = result.out.find("\nSubsystem\t");
  if (at == std::string::npos) return -1;
  return std::stoi(result.out.substr(result.out.find_first_not_of('\t', at + 10), 8), nullptr, 16);
}

std::vector<std::uint8_t> with_subsystem(std::uint16_t subsystem) {
  xbb::test::SyntheticPe spec = xbb::test::xen_like();
  spec.subsystem = subsystem;
  return build_pe(spec);
}

void put32(std::vector<std::uint8_t>& file, std::size_t offset, std::uint32_t value) {
  for (int i = 0; i < 4; ++i) file[offset + i] = (value >> (8 * i)) & 0xff;
}

TEST(PeSubsystem, MatchesObjdumpOnRealAndSyntheticImages) {
  for (const auto& path : {xbb::test::xen417_efi(), xbb::test::xen420_efi()}) {
    const auto file = xbb::test::read_binary(path);
    const xbb::pe::Image image = xbb::pe::parse(file);
    EXPECT_EQ(image.subsystem, objdump_subsystem(file)) << path;
    EXPECT_EQ(image.subsystem, xbb::pe::kSubsystemEfiApplication) << path;
    EXPECT_NO_THROW(xbb::pe::check_efi_application(image)) << path;
  }
  for (std::uint16_t subsystem : {2, 3, 11, 12, 13}) {
    const auto file = with_subsystem(subsystem);
    EXPECT_EQ(xbb::pe::parse(file).subsystem, objdump_subsystem(file));
  }
}

TEST(PeSubsystem, Names) {
  EXPECT_EQ(xbb::pe::subsystem_name(1), "native");
  EXPECT_EQ(xbb::pe::subsystem_name(2), "Windows GUI");
  EXPECT_EQ(xbb::pe::subsystem_name(3), "Windows console");
  EXPECT_EQ(xbb::pe::subsystem_name(10), "EFI application");
  EXPECT_EQ(xbb::pe::subsystem_name(11), "EFI boot service driver");
  EXPECT_EQ(xbb::pe::subsystem_name(12), "EFI runtime driver");
  EXPECT_EQ(xbb::pe::subsystem_name(13), "EFI ROM");
  EXPECT_EQ(xbb::pe::subsystem_name(0), "unknown");
  EXPECT_EQ(xbb::pe::subsystem_name(4), "unknown");
}

TEST(PeSubsystem, OnlyEfiApplicationsPass) {
  // The Subsystem field is at optional header + 68: 0x98 + 0x44 = 0xdc.
  EXPECT_EQ(error_of([] { xbb::pe::check_efi_application(xbb::pe::parse(with_subsystem(3))); }),
            "offset 0xdc: Subsystem 3 (Windows console): not an EFI application (Subsystem 10)");
  EXPECT_EQ(error_of([] { xbb::pe::check_efi_application(xbb::pe::parse(with_subsystem(11))); }),
            "offset 0xdc: Subsystem 11 (EFI boot service driver): not an EFI application "
            "(Subsystem 10)");
  EXPECT_EQ(error_of([] { xbb::pe::check_efi_application(xbb::pe::parse(with_subsystem(10))); }),
            "no error");
}

TEST(PePrefix, RealImagesPassFromTheirFirst64KiB) {
  for (const auto& path : {xbb::test::xen417_efi(), xbb::test::xen420_efi()}) {
    const auto file = xbb::test::read_binary(path);
    ASSERT_GT(file.size(), xbb::pe::kHeaderPrefixSize);
    EXPECT_EQ(prefix_error(file), "no error") << path;
    EXPECT_EQ(prefix_error(file, 0x400), "no error") << path;  // all headers lie in 1 KiB
  }
  EXPECT_EQ(prefix_error(build_pe(xbb::test::xen_like())), "no error");  // the whole file
}

TEST(PePrefix, RefusesWhatParseRefusesWithTheSameMessage) {
  const auto gz = xbb::test::read_binary(xbb::test::xen417_gz());
  const auto elf = xbb::elf::gunzip(gz);
  auto not_mz = build_pe(xbb::test::xen_like());
  not_mz[0] = 'X';
  auto no_pe_signature = build_pe(xbb::test::xen_like());
  no_pe_signature[xbb::test::kPeOffset + 1] = 'X';
  auto pe32 = build_pe(xbb::test::xen_like());
  pe32[kOptionalOffset] = 0x0b;
  pe32[kOptionalOffset + 1] = 0x01;
  auto bad_alignment = build_pe(xbb::test::xen_like());
  put32(bad_alignment, kOptionalOffset + 36, 0x300);  // FileAlignment
  const auto valid = build_pe(xbb::test::xen_like());
  const std::vector<std::uint8_t> short_dos_header(valid.begin(), valid.begin() + 0x30);

  const std::vector<std::pair<std::string, std::vector<std::uint8_t>>> cases = {
      {"gzip", gz},
      {"elf", elf},
      {"not MZ", not_mz},
      {"no PE signature", no_pe_signature},
      {"PE32", pe32},
      {"FileAlignment", bad_alignment},
      {"short DOS header", short_dos_header},
  };
  for (const auto& [name, file] : cases) {
    const std::string expected = parse_error(file);
    EXPECT_NE(expected, "no error") << name;
    EXPECT_EQ(prefix_error(file), expected) << name;
  }
  EXPECT_NE(prefix_error(elf).find("the bootspec must point at xen.efi"), std::string::npos);
  EXPECT_EQ(prefix_error(not_mz), "offset 0x0: not a PE image: no \"MZ\" DOS header signature");
}

TEST(PePrefix, RefusesOtherSubsystemsLikeCheckEfiApplication) {
  const auto console = with_subsystem(3);
  EXPECT_EQ(prefix_error(console),
            "offset 0xdc: Subsystem 3 (Windows console): not an EFI application (Subsystem 10)");
}

TEST(PePrefix, HeadersBeyondThePrefixAreRefused) {
  // e_lfanew pointing past the 64 KiB read, in a larger file.
  auto file = build_pe(xbb::test::xen_like());
  file.resize(0x20000, 0);
  put32(file, 0x3c, 0x18000);
  EXPECT_EQ(prefix_error(file),
            "offset 0x18000: PE signature (e_lfanew 0x18000) (0x4 bytes) extends past the first "
            "0x10000 bytes of the file (read to check its headers)");
  // The same file read whole by parse() finds no signature there.
  EXPECT_EQ(parse_error(file),
            "offset 0x18000: not a PE image: no \"PE\\0\\0\" signature where e_lfanew points");
  // Past the end of a file shorter than the prefix: parse()'s message.
  file.resize(0x200);
  EXPECT_EQ(prefix_error(file), parse_error(file));
  EXPECT_NE(parse_error(file).find("extends past the end of the file (0x200 bytes)"),
            std::string::npos);
}

}  // namespace
