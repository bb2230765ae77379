#include "xbb/xen_config.hpp"

#include <gtest/gtest.h>

#include "xbb/error.hpp"

namespace {

const std::string kOrigin = "/boot/EFI/xen/xen-abc.efi: .config";

xbb::XenConfig sample_config() {
  xbb::XenConfig config;
  config.section = "nixos";
  config.xen_params = {"dom0_mem=4096M,max:4096M", "dom0_max_vcpus=4"};
  config.kernel = "\\EFI\\nixos\\dddd-linux-6.12.7-bzImage.efi";
  config.kernel_params = {"init=/nix/store/aaaa-nixos-system-hv/init", "loglevel=4", "console=hvc0"};
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
            "[global]\n"
            "default=nixos\n"
            "\n"
            "[nixos]\n"
            "options=dom0_mem=4096M,max:4096M dom0_max_vcpus=4\n"
            "kernel=\\EFI\\nixos\\dddd-linux-6.12.7-bzImage.efi init=/nix/store/aaaa-nixos-system-hv/init "
            "loglevel=4 console=hvc0\n"
            "ramdisk=\\EFI\\nixos\\bbbb-initrd-linux-6.12.7-initrd.efi\n");
}

TEST(RenderXenConfig, WithoutRamdiskXenParamsOrKernelParams) {
  xbb::XenConfig config;
  config.section = "xen-0b4e.5_f";
  config.kernel = "\\EFI\\nixos\\k.efi";
  EXPECT_EQ(xbb::render_xen_config(config),
            "[global]\ndefault=xen-0b4e.5_f\n\n[xen-0b4e.5_f]\nkernel=\\EFI\\nixos\\k.efi\n");
}

TEST(RenderXenConfig, BracketInAParameterStaysAfterItsKey) {
  xbb::XenConfig config = sample_config();
  config.xen_params = {"[global]"};
  config.kernel_params = {"[nixos]"};
  config.ramdisk.reset();
  EXPECT_EQ(xbb::render_xen_config(config),
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
  EXPECT_EQ(render_error(config), "Xen configuration: section: 'a\\x0ab' has a character outside [A-Za-z0-9_.-]");
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
  EXPECT_EQ(parsed.sections[0].keys, (std::vector<std::pair<std::string, std::string>>{{"kernel", "a.efi"}}));
  EXPECT_EQ(parsed.sections[1].name, "second");
  EXPECT_EQ(parsed.sections[1].keys, (std::vector<std::pair<std::string, std::string>>{
                                         {"ramdisk", "r.efi"}, {"kernel", "b.efi x=1"}, {"options", ""}}));
}

TEST(ParseXenConfig, ValueKeepsLaterEqualsSigns) {
  xbb::ParsedXenConfig parsed = xbb::parse_xen_config("[s]\noptions=a=b c=d\n", kOrigin);
  EXPECT_EQ(parsed.sections[0].keys[0], (std::pair<std::string, std::string>{"options", "a=b c=d"}));
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
  EXPECT_EQ(parse_error("default=nixos\n"), kOrigin + ": line 1: key 'default' outside any section");
  EXPECT_EQ(parse_error("[global]\ndefault=nixos\n[nixos]\nkernel\n"),
            kOrigin + ": line 4: neither a section header nor key=value");
  EXPECT_EQ(parse_error("[nixos\nkernel=k\n"), kOrigin + ": line 1: section header without ']'");
  EXPECT_EQ(parse_error("[]\n"), kOrigin + ": line 1: empty section name");
  EXPECT_EQ(parse_error("[s]\n=value\n"), kOrigin + ": line 2: empty key");
  EXPECT_EQ(parse_error(std::string("[s]\nkernel=a\0b\n", 14)), kOrigin + ": line 2: contains a NUL byte");
  EXPECT_EQ(parse_error("[s]\nkernel=a\rramdisk=b\n"),
            kOrigin + ": line 2: contains a carriage return inside the line");
  EXPECT_EQ(parse_error("[s]\n\noptions=caf\xc3\xa9\n"), kOrigin + ": line 3: contains a byte outside ASCII");
}

// --- xen_file_name ------------------------------------------------------------------

TEST(XenFileName, ConvertsToBackslashes) {
  EXPECT_EQ(xbb::xen_file_name("/EFI/nixos/a.efi"), "\\EFI\\nixos\\a.efi");
  EXPECT_EQ(xbb::xen_file_name("/EFI/nixos/dddd-linux-6.12.7-bzImage.efi"),
            "\\EFI\\nixos\\dddd-linux-6.12.7-bzImage.efi");
  EXPECT_EQ(xbb::xen_file_name("/k.efi"), "\\k.efi");
  EXPECT_EQ(xbb::xen_file_name("/EFI/my files/..a.efi"), "\\EFI\\my files\\..a.efi");
}

TEST(XenFileName, RejectsUnsafePaths) {
  EXPECT_EQ(file_name_error("EFI/nixos/a.efi"), "ESP path 'EFI/nixos/a.efi': is not absolute");
  EXPECT_EQ(file_name_error(""), "ESP path '': is not absolute");
  EXPECT_EQ(file_name_error("/"), "ESP path '/': has an empty component");
  EXPECT_EQ(file_name_error("/EFI//a.efi"), "ESP path '/EFI//a.efi': has an empty component");
  EXPECT_EQ(file_name_error("/EFI/nixos/"), "ESP path '/EFI/nixos/': has an empty component");
  EXPECT_EQ(file_name_error("/EFI/../a.efi"), "ESP path '/EFI/../a.efi': has a '.' or '..' component");
  EXPECT_EQ(file_name_error("/EFI/./a.efi"), "ESP path '/EFI/./a.efi': has a '.' or '..' component");
  EXPECT_EQ(file_name_error("/EFI/.."), "ESP path '/EFI/..': has a '.' or '..' component");
  EXPECT_EQ(file_name_error("/EFI\\nixos/a.efi"), "ESP path '/EFI\\nixos/a.efi': contains a backslash");
  EXPECT_EQ(file_name_error("/EFI/a\nb.efi"),
            "ESP path '/EFI/a\\x0ab.efi': contains a character outside printable ASCII");
  EXPECT_EQ(file_name_error("/EFI/caf\xc3\xa9.efi"),
            "ESP path '/EFI/caf\\xc3\\xa9.efi': contains a character outside printable ASCII");
  EXPECT_EQ(file_name_error(std::string_view("/EFI/a\0.efi", 11)),
            "ESP path '/EFI/a\\x00.efi': contains a character outside printable ASCII");
}

}  // namespace
