#include "xbb/loader_conf.hpp"

#include <gtest/gtest.h>

#include <vector>

#include "xbb/error.hpp"

namespace {

// nixos-<rest> -> xen-<rest>, anything else left alone; records what it saw.
struct NixosToXen {
  std::vector<std::string>* seen;
  std::optional<std::string> operator()(std::string_view value) const {
    seen->emplace_back(value);
    if (!value.starts_with("nixos-")) return std::nullopt;
    return "xen-" + std::string(value.substr(6));
  }
};

std::string retarget(std::string_view text, std::vector<std::string>* seen = nullptr) {
  std::vector<std::string> ignored;
  return xbb::retarget_loader_conf(text, NixosToXen{seen ? seen : &ignored});
}

// --- loader_conf_value ----------------------------------------------------------

TEST(LoaderConfValue, GenerationNamedLoaderConf) {
  const char* text = "timeout 5\ndefault nixos-generation-42.conf\nconsole-mode keep\neditor 0\n";
  EXPECT_EQ(xbb::loader_conf_value(text, "default"), "nixos-generation-42.conf");
  EXPECT_EQ(xbb::loader_conf_value(text, "timeout"), "5");
  EXPECT_EQ(xbb::loader_conf_value(text, "editor"), "0");
  EXPECT_FALSE(xbb::loader_conf_value(text, "preferred").has_value());
}

TEST(LoaderConfValue, BootCountingLoaderConf) {
  const char* text = "timeout 5\npreferred nixos-0b4e5f6a.conf\ndefault nixos-*\nconsole-mode keep";
  EXPECT_EQ(xbb::loader_conf_value(text, "preferred"), "nixos-0b4e5f6a.conf");
  EXPECT_EQ(xbb::loader_conf_value(text, "default"), "nixos-*");
  EXPECT_EQ(xbb::loader_conf_value(text, "console-mode"), "keep");
}

TEST(LoaderConfValue, LastLineWins) {
  EXPECT_EQ(xbb::loader_conf_value("default a.conf\ntimeout 3\ndefault b.conf\n", "default"),
            "b.conf");
}

TEST(LoaderConfValue, CrlfTabsAndTrailingBlanks) {
  EXPECT_EQ(xbb::loader_conf_value("timeout 5\r\n  default\t nixos-a.conf \t\r\n", "default"),
            "nixos-a.conf");
}

TEST(LoaderConfValue, KeysAreWholeWordsAndCaseSensitive) {
  const char* text = "defaults x\nDefault y\n# default z\n  #default w\n";
  EXPECT_FALSE(xbb::loader_conf_value(text, "default").has_value());
}

TEST(LoaderConfValue, KeyWithoutValueIsSkippedAsSystemdBootSkipsIt) {
  EXPECT_EQ(xbb::loader_conf_value("default a.conf\ndefault\n", "default"), "a.conf");
  EXPECT_EQ(xbb::loader_conf_value("default a.conf\ndefault \t\r\n", "default"), "a.conf");
  EXPECT_FALSE(xbb::loader_conf_value("default\n", "default").has_value());
}

TEST(LoaderConfValue, EmptyText) {
  EXPECT_FALSE(xbb::loader_conf_value("", "default").has_value());
}

// --- retarget_loader_conf -----------------------------------------------------------

TEST(RetargetLoaderConf, GenerationNamedDefault) {
  std::vector<std::string> seen;
  EXPECT_EQ(
      retarget("timeout 5\ndefault nixos-generation-42.conf\nconsole-mode keep\neditor 0\n", &seen),
      "timeout 5\ndefault xen-generation-42.conf\nconsole-mode keep\neditor 0\n");
  EXPECT_EQ(seen, std::vector<std::string>{"nixos-generation-42.conf"});
}

TEST(RetargetLoaderConf, ContentAddressedDefault) {
  EXPECT_EQ(retarget("timeout 5\ndefault nixos-0b4e5f6a7c8d.conf\nconsole-mode keep\n"),
            "timeout 5\ndefault xen-0b4e5f6a7c8d.conf\nconsole-mode keep\n");
}

TEST(RetargetLoaderConf, GlobDefault) {
  EXPECT_EQ(retarget("timeout 5\ndefault nixos-*\n"), "timeout 5\ndefault xen-*\n");
}

TEST(RetargetLoaderConf, PreferredAndDefault) {
  std::vector<std::string> seen;
  EXPECT_EQ(
      retarget("timeout 5\npreferred nixos-0b4e.conf\ndefault nixos-*\nconsole-mode keep\n", &seen),
      "timeout 5\npreferred xen-0b4e.conf\ndefault xen-*\nconsole-mode keep\n");
  EXPECT_EQ(seen, (std::vector<std::string>{"nixos-0b4e.conf", "nixos-*"}));
}

TEST(RetargetLoaderConf, KeepsCrlf) {
  EXPECT_EQ(retarget("timeout 5\r\ndefault nixos-a.conf\r\neditor 0\r\n"),
            "timeout 5\r\ndefault xen-a.conf\r\neditor 0\r\n");
}

TEST(RetargetLoaderConf, KeepsMissingFinalNewline) {
  EXPECT_EQ(retarget("timeout 5\ndefault nixos-a.conf"), "timeout 5\ndefault xen-a.conf");
  EXPECT_EQ(retarget("default nixos-a.conf\r"), "default xen-a.conf\r");
}

TEST(RetargetLoaderConf, KeepsSpacingAroundTheValue) {
  std::vector<std::string> seen;
  EXPECT_EQ(retarget("  default \t nixos-a.conf \t\r\n", &seen), "  default \t xen-a.conf \t\r\n");
  EXPECT_EQ(seen, std::vector<std::string>{"nixos-a.conf"});
}

TEST(RetargetLoaderConf, ValueIsTheRestOfTheLine) {
  std::vector<std::string> seen;
  EXPECT_EQ(retarget("default nixos-a.conf # not a comment\n", &seen),
            "default xen-a.conf # not a comment\n");
  EXPECT_EQ(seen, std::vector<std::string>{"nixos-a.conf # not a comment"});
}

TEST(RetargetLoaderConf, LeavesLinesTheFunctionDeclines) {
  std::vector<std::string> seen;
  const char* text = "default @saved\npreferred other.conf\n";
  EXPECT_EQ(retarget(text, &seen), text);
  EXPECT_EQ(seen, (std::vector<std::string>{"@saved", "other.conf"}));
}

TEST(RetargetLoaderConf, TouchesOnlyDefaultAndPreferredKeys) {
  std::vector<std::string> seen;
  const char* text =
      "# default nixos-a.conf\n"
      "  #default nixos-b.conf\n"
      "Default nixos-c.conf\n"
      "defaults nixos-d.conf\n"
      "timeout nixos-e.conf\n"
      "default\n"
      "default   \n"
      "\n";
  EXPECT_EQ(retarget(text, &seen), text);
  EXPECT_TRUE(seen.empty());
}

TEST(RetargetLoaderConf, EveryDefaultLineIsRetargeted) {
  EXPECT_EQ(retarget("default nixos-a.conf\ndefault nixos-b.conf\n"),
            "default xen-a.conf\ndefault xen-b.conf\n");
}

TEST(RetargetLoaderConf, EmptyText) { EXPECT_EQ(retarget(""), ""); }

TEST(RetargetLoaderConf, RejectsReplacementsThatBreakTheFile) {
  const std::pair<std::string, const char*> replacements[] = {
      {"xen-a.conf\ntimeout 0", "contains a newline"},
      {"xen-a.conf\r", "contains a carriage return"},
      {std::string("xen\0a", 5), "contains a NUL byte"},
      {"", "is empty"},
  };
  for (const auto& [replacement, problem] : replacements) {
    auto fn = [&replacement = replacement](std::string_view) -> std::optional<std::string> {
      return replacement;
    };
    try {
      xbb::retarget_loader_conf("timeout 5\npreferred nixos-a.conf\n", fn);
      ADD_FAILURE() << "accepted a replacement that " << problem;
    } catch (const xbb::Error& error) {
      EXPECT_EQ(std::string(error.what()),
                std::string("loader.conf: line 2: new preferred value ") + problem);
    }
  }
}

}  // namespace
