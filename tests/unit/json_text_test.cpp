// The one rule by which every JSON document the tool writes holds text that is
// not UTF-8 (issue 15, item 1): each stray byte as \xNN, the rest as it is.
#include "xbb/json_text.hpp"

#include <gtest/gtest.h>

#include "pe_builder.hpp"
#include "text.hpp"
#include "xbb/inspect.hpp"
#include "xbb/output.hpp"
#include "xbb/record.hpp"

namespace xbb {
namespace {

using Json = nlohmann::ordered_json;

TEST(Utf8Escaping, KeepsWellFormedUtf8AndEscapesEveryOtherByte) {
  EXPECT_EQ(text::utf8_escaped("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"),
            "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
  EXPECT_EQ(text::utf8_escaped("caf\xe9"), "caf\\xe9");
  EXPECT_EQ(text::utf8_escaped("\xff\xfe"), "\\xff\\xfe");
  EXPECT_EQ(text::utf8_escaped("a\xc3"), "a\\xc3") << "truncated sequence";
  EXPECT_EQ(text::utf8_escaped("\xc3\xc3\xa9"), "\\xc3\xc3\xa9") << "resynchronises";
  EXPECT_EQ(text::utf8_escaped("\xc0\xaf"), "\\xc0\\xaf") << "overlong";
  EXPECT_EQ(text::utf8_escaped("\xe0\x80\xaf"), "\\xe0\\x80\\xaf") << "overlong";
  EXPECT_EQ(text::utf8_escaped("\xed\xa0\x80"), "\\xed\\xa0\\x80") << "surrogate";
  EXPECT_EQ(text::utf8_escaped("\xf4\x90\x80\x80"), "\\xf4\\x90\\x80\\x80") << "past U+10FFFF";
  EXPECT_EQ(text::utf8_escaped(std::string_view("a\0b\n", 4)), std::string("a\0b\n", 4))
      << "control characters are UTF-8: JSON escapes them itself";
}

TEST(Utf8Escaping, AgreesWithWhatNlohmannAccepts) {
  for (const std::string& sample :
       {std::string("plain"), std::string("caf\xc3\xa9"), std::string("caf\xe9"),
        std::string("\xed\x9f\xbf"), std::string("\xed\xa0\x80"), std::string("\xf4\x8f\xbf\xbf"),
        std::string("\xf4\x90\x80\x80"), std::string("\xe0\x9f\xbf"),
        std::string("\xf0\x8f\xbf\xbf"), std::string("\xc1\xbf"), std::string("\xc2\x80"),
        std::string("\x80")}) {
    bool accepted = true;
    try {
      (void)Json(sample).dump();
    } catch (const Json::type_error&) {
      accepted = false;
    }
    EXPECT_EQ(text::is_utf8(sample), accepted) << text::printable(sample);
  }
}

TEST(JsonText, EscapesStringsAndKeysAtAnyDepthAndParsesBack) {
  const Json document = {{"path", "/root/caf\xe9"},
                         {"list", {"ok", "\xff"}},
                         {"nested", {{"k\xe9y", {{"deeper", "x\xfe"}}}}},
                         {"number", 3}};
  const std::string text = json_text(document);
  const Json parsed = Json::parse(text);
  EXPECT_EQ(parsed["path"], "/root/caf\\xe9");
  EXPECT_EQ(parsed["list"][1], "\\xff");
  EXPECT_EQ(parsed["nested"]["k\\xe9y"]["deeper"], "x\\xfe");
  EXPECT_EQ(parsed["number"], 3);
}

TEST(JsonText, IsNlohmannsDumpForWellFormedText) {
  const Json document = {{"name", "caf\xc3\xa9"}, {"list", {1, "two"}}};
  EXPECT_EQ(json_text(document), document.dump());
  EXPECT_EQ(json_text(document, 2), document.dump(2));
}

TEST(JsonText, ThePrintedDocumentsTakeAnyByte) {
  RunResult result;
  result.warnings.push_back("/root/caf\xe9: odd");
  GenerationOutcome generation;
  generation.label = "nixos-generation-1";
  generation.reason = "/root/nix/store/\xe9xy/boot.json: cannot open";
  generation.xen_efi = "/root/caf\xe9/xen.efi";
  result.generations.push_back(generation);
  for (const Json& document : {plan_json(result), list_json(result)}) {
    const Json parsed = Json::parse(json_text(document, 2));
    EXPECT_EQ(parsed["warnings"][0], "/root/caf\\xe9: odd");
    EXPECT_EQ(parsed["generations"][0]["reason"], "/root/nix/store/\\xe9xy/boot.json: cannot open");
  }
}

TEST(JsonText, InspectShowsASectionNameOfAnyByte) {
  for (const auto& [name, bytes] : test::fuzz_seeds()) {
    if (name != "byte-section-name.efi") continue;
    const Json parsed = Json::parse(json_text(inspect_json(inspect_image(bytes, "x.efi")), 2));
    EXPECT_EQ(parsed["sections"][1]["name"], ".d\\xff\\xe9ta");
    return;
  }
  FAIL() << "no seed byte-section-name.efi";
}

TEST(JsonText, TheRecordTakesAnyByteAndReadsBack) {
  Record record;
  record.images["EFI/xen/xen-generation-1.efi"] = {
      {1, 2}, std::string(32, 'a'), std::string(64, 'b'), "[global]\n\xff", ""};
  record.sources["/root/caf\xe9/boot/xen.efi"] = {{3, 4}, false, std::string(64, 'c'), true};
  const std::string text = render_record(record);
  const std::optional<Record> read = parse_record(text);
  ASSERT_TRUE(read);
  EXPECT_EQ(read->sources.count("/root/caf\\xe9/boot/xen.efi"), 1u);
  EXPECT_EQ(read->images.at("EFI/xen/xen-generation-1.efi").config, "[global]\n\\xff");
  EXPECT_EQ(render_record(*read), text) << "escaping is a fixed point";
}

}  // namespace
}  // namespace xbb
