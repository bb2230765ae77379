#include "xbb/xen_config.hpp"

#include <gtest/gtest.h>

#include <set>

#include "xbb/error.hpp"
#include "xbb/layout.hpp"

namespace {

const std::string kOrigin = "/boot/EFI/xen/xen-abc.efi: .config";
const std::string kMarker = std::string(xbb::layout::kMarker) + "\n";

xbb::XenConfig sample_config() {
  xbb::XenConfig config;
  config.section = "nixos";
  config.xen_params = {"dom0_mem=4096M,max:4096M", "dom0_max_vcpus=4"};
  config.kernel = "\\EFI\\nixos\\dddd-linux-6.12.7-bzImage.efi";
  config.kernel_params = {"init=/nix/store/aaaa-nixos-system-hv/init", "loglevel=4",
                          "console=hvc0"};
  config.ramdisk = "\\EFI\\nixos\\bbbb-initrd-linux-6.12.7-initrd.efi";
  return config;
}

std::string render_error(const xbb::XenConfig& config) {
  try {
    xbb::render_xen_config(config);
  } catch (const xbb::Error& error) {
    return error.what();
  }
  return "";
}

std::string parse_error(std::string_view text) {
  try {
    xbb::parse_xen_config(text, kOrigin);
  } catch (const xbb::Error& error) {
    return error.what();
  }
  return "";
}

std::string file_name_error(std::string_view path) {
  try {
    xbb::xen_file_name(path);
  } catch (const xbb::Error& error) {
    return error.what();
  }
  return "";
}

// --- render -------------------------------------------------------------------

TEST(RenderXenConfig, FullConfiguration) {
  EXPECT_EQ(xbb::render_xen_config(sample_config()),
            kMarker +
                "[global]\n"
                "default=nixos\n"
                "\n"
                "[nixos]\n"
                "options=dom0_mem=4096M,max:4096M dom0_max_vcpus=4\n"
                "kernel=\\EFI\\nixos\\dddd-linux-6.12.7-bzImage.efi "
                "init=/nix/store/aaaa-nixos-system-hv/init "
                "loglevel=4 console=hvc0\n"
                "ramdisk=\\EFI\\nixos\\bbbb-initrd-linux-6.12.7-initrd.efi\n");
}

TEST(RenderXenConfig, WithoutRamdiskXenParamsOrKernelParams) {
  xbb::XenConfig config;
  config.section = "xen-0b4e.5_f";
  config.kernel = "\\EFI\\nixos\\k.efi";
  EXPECT_EQ(
      xbb::render_xen_config(config),
      kMarker + "[global]\ndefault=xen-0b4e.5_f\n\n[xen-0b4e.5_f]\nkernel=\\EFI\\nixos\\k.efi\n");
}

TEST(RenderXenConfig, BracketInAParameterStaysAfterItsKey) {
  xbb::XenConfig config = sample_config();
  config.xen_params = {"[global]"};
  config.kernel_params = {"[nixos]"};
  config.ramdisk.reset();
  EXPECT_EQ(xbb::render_xen_config(config),
            kMarker +
                "[global]\ndefault=nixos\n\n[nixos]\noptions=[global]\n"
                "kernel=\\EFI\\nixos\\dddd-linux-6.12.7-bzImage.efi [nixos]\n");
}

TEST(RenderXenConfig, RejectsLineBreaksAndNulInEveryValue) {
  const std::pair<std::string, const char*> injections[] = {
      {"a\nkernel=\\evil.efi", "contains a newline"},
      {"a\n[global]", "contains a newline"},
      {"a\rramdisk=x", "contains a carriage return"},
      {std::string("a\0b", 3), "contains a NUL byte"},
  };
  for (const auto& [value, problem] : injections) {
    xbb::XenConfig config = sample_config();
    config.xen_params[1] = value;
    EXPECT_EQ(render_error(config), std::string("Xen configuration: options[1]: ") + problem);
    config = sample_config();
    config.kernel = value;
    EXPECT_EQ(render_error(config), std::string("Xen configuration: kernel: ") + problem);
    config = sample_config();
    config.kernel_params[2] = value;
    EXPECT_EQ(render_error(config), std::string("Xen configuration: kernel params[2]: ") + problem);
    config = sample_config();
    config.ramdisk = value;
    EXPECT_EQ(render_error(config), std::string("Xen configuration: ramdisk: ") + problem);
  }
}

// What Xen would read differently from how it was written, whatever field it is in.
TEST(RenderXenConfig, RejectsWhatXenWouldNotReadBack) {
  const std::pair<std::string, std::string> values[] = {
      {"caf\xc3\xa9", "contains a byte outside ASCII"},
      {"a\x0b"
       "b",
       "contains the control character \\x0b, at which Xen ends the line"},
      {"a\x0c"
       "b",
       "contains the control character \\x0c, at which Xen ends the line"},
      {"\x1b[1m", "contains the control character \\x1b, at which Xen ends the line"},
      {"a\x7f", "contains the control character \\x7f, at which Xen ends the line"},
      {"a\tb", "contains the control character \\x09, at which Xen ends the line"},
      {"a#b", "contains '#', where Xen would start a comment"},
  };
  for (const auto& [value, problem] : values) {
    xbb::XenConfig config = sample_config();
    config.xen_params[0] = value;
    EXPECT_EQ(render_error(config), "Xen configuration: options[0]: " + problem);
    config = sample_config();
    config.kernel_params[1] = value;
    EXPECT_EQ(render_error(config), "Xen configuration: kernel params[1]: " + problem);
    config = sample_config();
    config.ramdisk = value;
    EXPECT_EQ(render_error(config), "Xen configuration: ramdisk: " + problem);
  }
}

TEST(RenderXenConfig, RejectsFileNamesWithABlank) {
  xbb::XenConfig config = sample_config();
  config.kernel = "\\EFI\\nixos\\my kernel.efi";
  EXPECT_EQ(render_error(config),
            "Xen configuration: kernel: '\\EFI\\nixos\\my kernel.efi' contains a blank, "
            "where Xen would end the file name");
  config = sample_config();
  config.ramdisk = "\\EFI\\nixos\\my initrd.efi";
  EXPECT_NE(render_error(config).find("Xen configuration: ramdisk: "), std::string::npos);
}

TEST(RenderXenConfig, ReadsBackAsWritten) {
  const xbb::XenConfig config = sample_config();
  const xbb::ParsedXenConfig parsed =
      xbb::parse_xen_config(xbb::render_xen_config(config), kOrigin);
  EXPECT_EQ(parsed.default_section, "nixos");
  EXPECT_EQ(parsed.default_value("options"), "dom0_mem=4096M,max:4096M dom0_max_vcpus=4");
  EXPECT_EQ(parsed.default_value("kernel"),
            config.kernel + " init=/nix/store/aaaa-nixos-system-hv/init loglevel=4 console=hvc0");
  EXPECT_EQ(parsed.default_value("ramdisk"), config.ramdisk);
}

TEST(RenderXenConfig, RejectsEmptyFiles) {
  xbb::XenConfig config = sample_config();
  config.kernel = "";
  EXPECT_EQ(render_error(config), "Xen configuration: kernel: is empty");
  config = sample_config();
  config.ramdisk = "";
  EXPECT_EQ(render_error(config), "Xen configuration: ramdisk: is empty");
}

TEST(RenderXenConfig, RejectsBadSectionNames) {
  xbb::XenConfig config = sample_config();
  config.section = "";
  EXPECT_EQ(render_error(config), "Xen configuration: section: is empty");
  for (const char* name : {"nix os", "a]b", "a\nb", "a/b", "a+b"}) {
    config.section = name;
    EXPECT_NE(render_error(config).find("Xen configuration: section: "), std::string::npos) << name;
  }
  config.section = "a\nb";
  EXPECT_EQ(render_error(config),
            "Xen configuration: section: 'a\\x0ab' has a character outside [A-Za-z0-9_.-]");
}

// --- parse ----------------------------------------------------------------------

TEST(ParseXenConfig, ReadsTheRenderedLayout) {
  xbb::ParsedXenConfig parsed = xbb::parse_xen_config(
      "[global]\n"
      "default=nixos\n"
      "\n"
      "[nixos]\n"
      "options=dom0_mem=4096M,max:4096M dom0_max_vcpus=4\n"
      "kernel=\\EFI\\nixos\\k.efi init=/nix/store/a/init loglevel=4\n"
      "ramdisk=\\EFI\\nixos\\i.efi\n",
      kOrigin);
  EXPECT_EQ(parsed.default_section, "nixos");
  ASSERT_EQ(parsed.sections.size(), 1u);
  EXPECT_EQ(parsed.sections[0].name, "nixos");
  const std::vector<std::pair<std::string, std::string>> keys = {
      {"options", "dom0_mem=4096M,max:4096M dom0_max_vcpus=4"},
      {"kernel", "\\EFI\\nixos\\k.efi init=/nix/store/a/init loglevel=4"},
      {"ramdisk", "\\EFI\\nixos\\i.efi"},
  };
  EXPECT_EQ(parsed.sections[0].keys, keys);
}

TEST(ParseXenConfig, CommentsCrlfBlanksAndSeveralSections) {
  xbb::ParsedXenConfig parsed = xbb::parse_xen_config(
      "# Xen configuration\r\n"
      "[global]\r\n"
      "  # indented comment\r\n"
      "chain=\\EFI\\other.efi\r\n"
      "default=second\r\n"
      "\t\r\n"
      "[first]\r\n"
      "kernel=a.efi\r\n"
      "[second]\r\n"
      "ramdisk=r.efi\r\n"
      "kernel=b.efi x=1\r\n"
      "options=",
      kOrigin);
  EXPECT_EQ(parsed.default_section, "second");
  ASSERT_EQ(parsed.sections.size(), 2u);
  EXPECT_EQ(parsed.sections[0].name, "first");
  EXPECT_EQ(parsed.sections[0].keys,
            (std::vector<std::pair<std::string, std::string>>{{"kernel", "a.efi"}}));
  EXPECT_EQ(parsed.sections[1].name, "second");
  EXPECT_EQ(parsed.sections[1].keys,
            (std::vector<std::pair<std::string, std::string>>{
                {"ramdisk", "r.efi"}, {"kernel", "b.efi x=1"}, {"options", ""}}));
}

// Xen's pre_parse starts a comment at '#' anywhere, and at ';' at the start
// of a line, and drops blanks before a value.
TEST(ParseXenConfig, CommentsAnywhereAndBlanksBeforeAValue) {
  xbb::ParsedXenConfig parsed = xbb::parse_xen_config(
      "[global] # the defaults\n"
      "default=nixos#comment\n"
      "; a comment\n"
      "[nixos]\n"
      "options=  a b # c\n"
      "kernel=k#x\n",
      kOrigin);
  EXPECT_EQ(parsed.default_section, "nixos");
  EXPECT_EQ(parsed.default_value("options"), "a b");
  EXPECT_EQ(parsed.default_value("kernel"), "k");
  EXPECT_EQ(parsed.default_value("ramdisk"), std::nullopt);
}

TEST(ParseXenConfig, ValueKeepsLaterEqualsSigns) {
  xbb::ParsedXenConfig parsed = xbb::parse_xen_config("[s]\noptions=a=b c=d\n", kOrigin);
  EXPECT_EQ(parsed.sections[0].keys[0],
            (std::pair<std::string, std::string>{"options", "a=b c=d"}));
}

TEST(ParseXenConfig, NoGlobalMeansNoDefault) {
  xbb::ParsedXenConfig parsed = xbb::parse_xen_config("[s]\nkernel=k\n", kOrigin);
  EXPECT_FALSE(parsed.default_section.has_value());
  ASSERT_EQ(parsed.sections.size(), 1u);
}

TEST(ParseXenConfig, EmptyText) {
  xbb::ParsedXenConfig parsed = xbb::parse_xen_config("", kOrigin);
  EXPECT_FALSE(parsed.default_section.has_value());
  EXPECT_TRUE(parsed.sections.empty());
}

TEST(ParseXenConfig, RejectsWhatXenWouldNotAccept) {
  EXPECT_EQ(parse_error("default=nixos\n"),
            kOrigin + ": line 1: key 'default' outside any section");
  EXPECT_EQ(parse_error("[global]\ndefault=nixos\n[nixos]\nkernel\n"),
            kOrigin + ": line 4: neither a section header nor key=value");
  EXPECT_EQ(parse_error("[nixos\nkernel=k\n"), kOrigin + ": line 1: section header without ']'");
  EXPECT_EQ(parse_error("[]\n"), kOrigin + ": line 1: empty section name");
  EXPECT_EQ(parse_error("[s]\n=value\n"), kOrigin + ": line 2: empty key");
  EXPECT_EQ(parse_error(std::string("[s]\nkernel=a\0b\n", 14)),
            kOrigin + ": line 2: contains a NUL byte");
  EXPECT_EQ(parse_error("[s]\nkernel=a\rramdisk=b\n"),
            kOrigin + ": line 2: contains a carriage return inside the line");
  EXPECT_EQ(parse_error("[s]\n\noptions=caf\xc3\xa9\n"),
            kOrigin + ": line 3: contains a byte outside ASCII");
  EXPECT_EQ(parse_error("[s]\noptions=a\x0b"
                        "b\n"),
            kOrigin + ": line 2: contains the control character \\x0b, at which Xen ends the line");
  EXPECT_EQ(parse_error("[s]\noptions=a\tb\n"),
            kOrigin + ": line 2: contains the control character \\x09, at which Xen ends the line");
  EXPECT_EQ(parse_error("[s]\nkernel =k\n"),
            kOrigin + ": line 2: key 'kernel ' ends in a blank; Xen would not find it");
  EXPECT_EQ(parse_error("[s] x\n"), kOrigin + ": line 1: text after the section header's ']'");
}

// --- xen_file_name ------------------------------------------------------------------

TEST(XenFileName, ConvertsToBackslashes) {
  EXPECT_EQ(xbb::xen_file_name("/EFI/nixos/a.efi"), "\\EFI\\nixos\\a.efi");
  EXPECT_EQ(xbb::xen_file_name("/EFI/nixos/dddd-linux-6.12.7-bzImage.efi"),
            "\\EFI\\nixos\\dddd-linux-6.12.7-bzImage.efi");
  EXPECT_EQ(xbb::xen_file_name("/k.efi"), "\\k.efi");
  EXPECT_EQ(xbb::xen_file_name("/EFI/my-files/..a.efi"), "\\EFI\\my-files\\..a.efi");
}

TEST(XenFileName, RejectsUnsafePaths) {
  EXPECT_EQ(file_name_error("EFI/nixos/a.efi"), "ESP path 'EFI/nixos/a.efi': is not absolute");
  EXPECT_EQ(file_name_error(""), "ESP path '': is not absolute");
  EXPECT_EQ(file_name_error("/"), "ESP path '/': has an empty component");
  EXPECT_EQ(file_name_error("/EFI//a.efi"), "ESP path '/EFI//a.efi': has an empty component");
  EXPECT_EQ(file_name_error("/EFI/nixos/"), "ESP path '/EFI/nixos/': has an empty component");
  EXPECT_EQ(file_name_error("/EFI/../a.efi"),
            "ESP path '/EFI/../a.efi': has a '.' or '..' component");
  EXPECT_EQ(file_name_error("/EFI/./a.efi"),
            "ESP path '/EFI/./a.efi': has a '.' or '..' component");
  EXPECT_EQ(file_name_error("/EFI/.."), "ESP path '/EFI/..': has a '.' or '..' component");
  EXPECT_EQ(file_name_error("/EFI\\nixos/a.efi"),
            "ESP path '/EFI\\nixos/a.efi': contains a backslash");
  EXPECT_EQ(file_name_error("/EFI/a\nb.efi"),
            "ESP path '/EFI/a\\x0ab.efi': contains a character outside printable ASCII");
  EXPECT_EQ(file_name_error("/EFI/caf\xc3\xa9.efi"),
            "ESP path '/EFI/caf\\xc3\\xa9.efi': contains a character outside printable ASCII");
  EXPECT_EQ(file_name_error(std::string_view("/EFI/a\0.efi", 11)),
            "ESP path '/EFI/a\\x00.efi': contains a character outside printable ASCII");
  EXPECT_EQ(file_name_error("/EFI/my kernel.efi"),
            "ESP path '/EFI/my kernel.efi': contains a blank, where Xen would end the file name");
  EXPECT_EQ(file_name_error("/EFI/a#b.efi"),
            "ESP path '/EFI/a#b.efi': contains '#', where Xen would start a comment");
}

// --- esp_path_of_xen_file --------------------------------------------------------------

TEST(EspPathOfXenFile, ResolvesFromTheRootOrTheImageFolder) {
  EXPECT_EQ(xbb::esp_path_of_xen_file("\\EFI\\nixos\\k.efi", "EFI/xen/"), "EFI/nixos/k.efi");
  EXPECT_EQ(xbb::esp_path_of_xen_file("..\\nixos\\k.efi", "EFI/xen/"), "EFI/nixos/k.efi");
  EXPECT_EQ(xbb::esp_path_of_xen_file("k.efi", "EFI/xen/"), "EFI/xen/k.efi");
  EXPECT_EQ(xbb::esp_path_of_xen_file(".\\a\\\\b.efi", "EFI/xen"), "EFI/xen/a/b.efi");
  EXPECT_THROW(xbb::esp_path_of_xen_file("..\\..\\..\\k.efi", "EFI/xen/"), xbb::Error);
  EXPECT_THROW(xbb::esp_path_of_xen_file("\\", "EFI/xen/"), xbb::Error);
}

// --- boot_problems ----------------------------------------------------------------------

xbb::BootFiles files_with(std::set<std::string> present, bool kernel = false,
                          bool ramdisk = false) {
  xbb::BootFiles files;
  files.image_path = "EFI/xen/xen-abc.efi";
  files.kernel_embedded = kernel;
  files.ramdisk_embedded = ramdisk;
  files.is_file = [present = std::move(present)](const std::string& path) {
    return present.count(path) > 0;
  };
  return files;
}

std::vector<std::string> problems_of(const std::string& config, const xbb::BootFiles& files) {
  return xbb::boot_problems(xbb::parse_xen_config(config, kOrigin), files);
}

TEST(BootProblems, NoneWhenKernelAndRamdiskAreThere) {
  const std::string config = xbb::render_xen_config(sample_config());
  EXPECT_EQ(problems_of(config, files_with({"EFI/nixos/dddd-linux-6.12.7-bzImage.efi",
                                            "EFI/nixos/bbbb-initrd-linux-6.12.7-initrd.efi"})),
            std::vector<std::string>{});
  EXPECT_EQ(problems_of(config, files_with({}, true, true)), std::vector<std::string>{});
}

TEST(BootProblems, NamesEachMissingFile) {
  const std::string config = xbb::render_xen_config(sample_config());
  EXPECT_EQ(problems_of(config, files_with({})),
            (std::vector<std::string>{
                "kernel \\EFI\\nixos\\dddd-linux-6.12.7-bzImage.efi is not on the ESP "
                "(EFI/nixos/dddd-linux-6.12.7-bzImage.efi)",
                "ramdisk \\EFI\\nixos\\bbbb-initrd-linux-6.12.7-initrd.efi is not on the ESP "
                "(EFI/nixos/bbbb-initrd-linux-6.12.7-initrd.efi)"}));
  EXPECT_EQ(problems_of(config, files_with({}, true)).size(), 1u);
}

TEST(BootProblems, NamesWhatTheConfigurationLacks) {
  EXPECT_EQ(problems_of("[nixos]\nkernel=k\n", files_with({})),
            std::vector<std::string>{"the configuration has no [global] default="});
  EXPECT_EQ(
      problems_of("[global]\ndefault=other\n[nixos]\nkernel=k\n", files_with({})),
      std::vector<std::string>{"[global] default=other names no section of the configuration"});
  EXPECT_EQ(problems_of("[global]\ndefault=nixos\n[nixos]\noptions=x\n", files_with({})),
            std::vector<std::string>{"section [nixos] has no kernel="});
  EXPECT_EQ(problems_of("[global]\ndefault=nixos\n[nixos]\nkernel=k\nramdisk=\n",
                        files_with({"EFI/xen/k"})),
            std::vector<std::string>{"ramdisk= names no file"});
  EXPECT_EQ(problems_of("[global]\ndefault=nixos\n[nixos]\nkernel=..\\..\\..\\k\n", files_with({})),
            std::vector<std::string>{"kernel: ..\\..\\..\\k: leaves the ESP"});
}

}  // namespace
