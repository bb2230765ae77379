// `inspect`: the reports for the real Xen images, checked against the facts
// objdump shows (quoted in issue 2) and against readelf.
#include "xbb/inspect.hpp"

#include <gtest/gtest.h>

#include <iterator>
#include <sstream>
#include <string>
#include <vector>

#include "pe_builder.hpp"
#include "pe_test_util.hpp"
#include "xbb/error.hpp"
#include "xbb/pe.hpp"

namespace {

TEST(Inspect, Xen417EfiJson) {
  const xbb::InspectReport report = xbb::inspect_file(xbb::test::xen417_efi().string());
  const nlohmann::json& json = report.json;
  EXPECT_EQ(json["format"], "PE32+");
  EXPECT_EQ(json["machine"], "x86-64");
  EXPECT_EQ(json["image_base"], "0xffff82d040000000");
  EXPECT_EQ(json["section_alignment"], 0x200000);
  EXPECT_EQ(json["file_alignment"], 0x20);
  EXPECT_EQ(json["size_of_image"], 0x1000000);
  EXPECT_EQ(json["size_of_headers"], 0x300);
  EXPECT_EQ(json["checksum"], 0x2bdb7f);
  EXPECT_EQ(json["computed_checksum"], 0x2bdb7f);
  EXPECT_EQ(json["signed"], false);
  EXPECT_EQ(json["subsystem"], "EFI application");  // objdump -p: 0000000a (EFI application)
  EXPECT_EQ(json["subsystem_code"], 10);
  EXPECT_EQ(json["build_id"], "c62e97bfb7156a842127d5c9d7bbced1");
  EXPECT_EQ(json["next_section_vma"], "0xffff82d041000000");
  EXPECT_TRUE(json["config"].is_null());

  // objdump -h: name, VMA, file offset of the nine sections.
  const std::vector<std::tuple<std::string, std::string, int>> expected = {
      {".text", "0xffff82d040200000", 0x300},
      {".rodata", "0xffff82d040400000", 0x160aa0},
      {".buildid", "0xffff82d0404575e8", 0x1b80a0},
      {".init", "0xffff82d040600000", 0x1b80e0},
      {".data.re", "0xffff82d040800000", 0x25a680},
      {".data", "0xffff82d04080a000", 0x264140},
      {".bss", "0xffff82d040817000", 0},
      {".reloc", "0xffff82d04094b140", 0x270a60},
      {".pad", "0xffff82d040a00000", 0}};
  ASSERT_EQ(json["sections"].size(), expected.size());
  for (std::size_t i = 0; i < expected.size(); ++i) {
    EXPECT_EQ(json["sections"][i]["name"], std::get<0>(expected[i]));
    EXPECT_EQ(json["sections"][i]["vma"], std::get<1>(expected[i]));
    EXPECT_EQ(json["sections"][i]["file_offset"], std::get<2>(expected[i]));
  }
  EXPECT_EQ(json["sections"][7]["flags"],
            nlohmann::json({"initialized-data", "discardable", "read"}));
  EXPECT_EQ(json["sections"][8]["virtual_size"], 0x600000);
}

TEST(Inspect, Xen417EfiText) {
  const std::string path = xbb::test::xen417_efi().string();
  const std::string text = xbb::inspect_file(path).text;
  EXPECT_EQ(text.substr(0, path.size() + 1), path + "\n");
  EXPECT_NE(text.find("ImageBase:           0xffff82d040000000\n"), std::string::npos) << text;
  EXPECT_NE(text.find("build id:            c62e97bfb7156a842127d5c9d7bbced1\n"), std::string::npos)
      << text;
  EXPECT_NE(text.find("CheckSum:            0x2bdb7f (correct)\n"), std::string::npos) << text;
  EXPECT_NE(text.find("subsystem:           EFI application (10)\n"), std::string::npos) << text;
  EXPECT_NE(text.find("    8 .pad                 0xffff82d040a00000 0x600000   0x0        0x0     "
                      "   0xc0000080 "
                      "uninitialized-data,read,write\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("no embedded .config\n"), std::string::npos);
}

// The words of each line of the text's section table, header first.
std::vector<std::vector<std::string>> section_table(const std::string& text) {
  std::vector<std::vector<std::string>> rows;
  const std::size_t start = text.find("sections:\n");
  if (start == std::string::npos) return rows;
  std::istringstream lines(text.substr(start + 10));
  for (std::string line; std::getline(lines, line) && line.starts_with("  ");) {
    std::istringstream words(line);
    rows.emplace_back(std::istream_iterator<std::string>(words),
                      std::istream_iterator<std::string>());
  }
  return rows;
}

// Every column has its header, and every row a word per column ("-" for no flags).
TEST(Inspect, EverySectionTableColumnHasAHeader) {
  for (const auto& image : {xbb::test::xen417_efi(), xbb::test::xen417_gz()}) {
    const auto rows = section_table(xbb::inspect_file(image.string()).text);
    ASSERT_GT(rows.size(), 1u) << image;
    for (std::size_t i = 1; i < rows.size(); ++i)
      EXPECT_EQ(rows[i].size(), rows[0].size()) << image << " row " << i;
  }
  const auto pe_header = section_table(xbb::inspect_file(xbb::test::xen417_efi().string()).text)[0];
  EXPECT_EQ(pe_header, (std::vector<std::string>{"Idx", "Name", "VMA", "VirtSize", "RawSize",
                                                 "FileOff", "Chars", "Flags"}));
}

TEST(Inspect, ShowsTheEmbeddedConfig) {
  const std::string config = "[global]\ndefault=xen\n\n[xen]\noptions=console=vga\n";
  const auto input = xbb::test::read_binary(xbb::test::xen417_efi());
  const auto unified = xbb::pe::add_sections(input, {{".config", {config.begin(), config.end()}}});
  const xbb::InspectReport report = xbb::inspect_image(unified.file, "unified.efi");
  EXPECT_EQ(report.json["config"], config);
  EXPECT_EQ(report.json["sections"].size(), 10u);
  EXPECT_EQ(report.json["sections"][9]["vma"], "0xffff82d041000000");
  EXPECT_EQ(report.json["size_of_headers"], 0x320);
  EXPECT_EQ(report.json["checksum"], report.json["computed_checksum"]);
  EXPECT_NE(report.text.find("embedded .config (" + std::to_string(config.size()) + " bytes):\n" +
                             config),
            std::string::npos)
      << report.text;
}

TEST(Inspect, ConfigTextStopsAtNulAndMasksControlBytes) {
  const std::vector<std::uint8_t> config = {'a', '\x01', 0xc3, '\n', 0, 'z'};
  const auto unified =
      xbb::pe::add_sections(xbb::test::build_pe(xbb::test::xen_like()), {{".config", config}});
  EXPECT_EQ(xbb::inspect_image(unified.file, "x.efi").json["config"], "a??\n");
}

TEST(Inspect, Xen420) {
  const nlohmann::json json = xbb::inspect_file(xbb::test::xen420_efi().string()).json;
  EXPECT_EQ(json["sections"].size(), 17u);
  EXPECT_EQ(json["sections"][4]["name"], ".data.read_mostly");
  EXPECT_EQ(json["sections"][16]["name"], ".debug_aranges");
  EXPECT_EQ(json["next_section_vma"], "0xffff82d042400000");
}

TEST(Inspect, Xen417MultibootGz) {
  const xbb::InspectReport report = xbb::inspect_file(xbb::test::xen417_gz().string());
  EXPECT_EQ(report.json["format"], "ELF32");
  EXPECT_EQ(report.json["compression"], "gzip");
  EXPECT_EQ(report.json["machine"], "i386");
  EXPECT_EQ(report.json["build_id"], "151b373fd64b321593bf987fd923cd10dabadac4");  // readelf -n
  ASSERT_EQ(report.json["sections"].size(), 3u);
  EXPECT_EQ(report.json["sections"][0]["name"], ".text");
  EXPECT_EQ(report.json["sections"][0]["address"], "0x200000");
  EXPECT_EQ(report.json["sections"][2]["name"], ".note");
  EXPECT_EQ(report.json["sections"][2]["type"], "NOTE");
  EXPECT_NE(report.text.find("format:              ELF32 (gzip-compressed), a multiboot image, "
                             "not EFI (not usable as xen.efi)\n"),
            std::string::npos)
      << report.text;
  // grub-file --is-x86-multiboot and --is-x86-multiboot2 both succeed on the
  // decompressed file; the magics are at 0x88 and 0x98 (elf_image_test).
  EXPECT_EQ(report.json["multiboot"], nlohmann::json::parse(R"([{"version": 1, "offset": 136},
                                                                {"version": 2, "offset": 152}])"));
  EXPECT_NE(report.text.find("multiboot:           1 (header at 0x88), 2 (header at 0x98)\n"),
            std::string::npos)
      << report.text;
}

TEST(Inspect, ElfWithoutMultibootHeader) {
  const xbb::InspectReport report = xbb::inspect_file("/bin/ls");
  EXPECT_EQ(report.json["format"], "ELF64");
  EXPECT_EQ(report.json["multiboot"], nlohmann::json::array());
  EXPECT_NE(report.text.find("format:              ELF64, not a multiboot image, not EFI (not "
                             "usable as xen.efi)\n"),
            std::string::npos)
      << report.text;
  EXPECT_NE(report.text.find("multiboot:           none\n"), std::string::npos) << report.text;
  EXPECT_EQ(report.text.find(", a multiboot image"), std::string::npos);
}

TEST(Inspect, ShowsAWindowsProgramsSubsystem) {
  xbb::test::SyntheticPe spec = xbb::test::xen_like();
  spec.subsystem = 3;
  const xbb::InspectReport report = xbb::inspect_image(xbb::test::build_pe(spec), "console.exe");
  EXPECT_EQ(report.json["subsystem"], "Windows console");
  EXPECT_EQ(report.json["subsystem_code"], 3);
  EXPECT_NE(report.text.find("subsystem:           Windows console (3)\n"), std::string::npos)
      << report.text;
}

TEST(Inspect, OtherFilesAreErrorsNamingThePath) {
  const xbb::test::TempDir dir;
  const std::string text = "timeout 3\ndefault nixos-*\n";
  xbb::test::write_binary(dir / "loader.conf", std::vector<std::uint8_t>(text.begin(), text.end()));
  try {
    xbb::inspect_file((dir / "loader.conf").string());
    ADD_FAILURE() << "no error";
  } catch (const xbb::Error& e) {
    EXPECT_EQ(std::string(e.what()),
              (dir / "loader.conf").string() +
                  ": neither a PE32+ (EFI) nor an ELF image: no MZ or ELF signature at offset 0x0");
  }
  try {
    xbb::inspect_file((dir / "missing.efi").string());
    ADD_FAILURE() << "no error";
  } catch (const xbb::Error& e) {
    EXPECT_EQ(std::string(e.what()),
              (dir / "missing.efi").string() + ": cannot open: No such file or directory");
  }
  try {
    xbb::inspect_file(dir.path().string());
    ADD_FAILURE() << "no error";
  } catch (const xbb::Error& e) {
    EXPECT_EQ(std::string(e.what()), dir.path().string() + ": cannot read: not a regular file");
  }
  const xbb::test::RunResult gzip = xbb::test::run({"gzip", "-c", (dir / "loader.conf").string()});
  ASSERT_EQ(gzip.exit_code, 0) << gzip.err;
  try {
    xbb::inspect_image(std::vector<std::uint8_t>(gzip.out.begin(), gzip.out.end()),
                       "loader.conf.gz");
    ADD_FAILURE() << "no error";
  } catch (const xbb::Error& e) {
    EXPECT_EQ(std::string(e.what()), "loader.conf.gz: a gzip file that does not hold an ELF image");
  }
  auto truncated = xbb::test::read_binary(xbb::test::xen417_efi());
  truncated.resize(0x200);
  try {
    xbb::inspect_image(truncated, "short.efi");
    ADD_FAILURE() << "no error";
  } catch (const xbb::Error& e) {
    EXPECT_EQ(std::string(e.what()),
              "short.efi: offset 0x188: section table (9 sections) (0x168 bytes) extends past the "
              "end of the file "
              "(0x200 bytes)");
  }
}

}  // namespace
