// The one rule by which every JSON document the tool writes holds text that is
// not UTF-8 (issue 15, item 1): each stray byte as \xNN, the rest as it is.
#include "xbb/json_text.hpp"

#include <gtest/gtest.h>

#include <limits>
#include <memory>
#include <string>
#include <vector>

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

TEST(JsonText, AppendedStringIsJsonTextOfTheString) {
  std::vector<std::string> samples = {"",
                                      "plain /nix/store/x-xen/boot/xen.efi",
                                      "quote \" backslash \\ slash /",
                                      "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80",
                                      "caf\xe9 \x1f\n",
                                      "\xff\xfe\"\\",
                                      "a\xc3",
                                      "\x7f del"};
  for (int byte = 0; byte < 256; ++byte) {
    samples.push_back(std::string(1, static_cast<char>(byte)));
    samples.push_back("x" + std::string(1, static_cast<char>(byte)) + "y");
  }
  for (const std::string& sample : samples) {
    std::string out = "prefix:";
    append_json_text(out, sample);
    EXPECT_EQ(out, "prefix:" + json_text(Json(sample))) << text::utf8_escaped(sample);
  }
}

// The record's entries are written by hand, each as json_text writes the
// JSON object of its fields: the text nlohmann gives for them is the oracle.
TEST(JsonText, TheRecordsEntriesAreJsonTextOfTheirFields) {
  using Map = nlohmann::json;  // keys sorted, as the record's objects were built
  Record record;
  record.images["EFI/xen/xen-\"1\".efi"] = {
      {std::numeric_limits<std::uint64_t>::max(), std::numeric_limits<std::int64_t>::min()},
      std::string(32, 'a'),
      "recipe\t\x01",
      "[global]\n\xff\\",
      ""};
  record.images["EFI/xen/xen-4.17.7-3fa9c2d1.efi"] = {
      {0, 0}, std::string(32, 'c'), "r", "", "3fa9c2d1" + std::string(56, 'e')};
  record.sources["/root/caf\xe9/boot/xen.efi"] = {{3, -4}, true, "", false};
  record.sources["/nix/store/x-xen/boot/xen.efi"] = {{5, 6}, false, std::string(64, 'e'), true};
  record.texts["loader/entries/xen-generation-1.conf"] = {{412, 3},
                                                          "title \"N\"\nefi /x.efi\n\x7f"};
  record.texts["EFI/xen/xen-\xfe.cfg"] = {{1, 1}, "\xc3"};
  record.root = "/mnt/\xe9\n";
  const auto document = std::make_shared<const std::string>(R"({"a":1,"b":[true,null]})");
  record.bootspecs["/nix/store/t-nixos-system"] = {"/mnt/nix/store/t/boot.json",
                                                   {1358, 4},
                                                   document,
                                                   {},
                                                   "/mnt/x\txen.efi",
                                                   "/mnt/k",
                                                   "/mnt/\xffi"};
  record.bootspecs["/nix/store/u-nixos-system"] = {
      "/mnt/nix/store/u/boot.json", {1, -1}, document, {}, "/mnt/x", "/mnt/k", std::nullopt};

  const auto stamped = [](const FileStamp& stamp) {
    return Map{{"size", stamp.size}, {"mtime_ns", stamp.mtime_ns}};
  };
  std::string expected;
  const auto lines = [&](std::string_view name, const auto& entries, const auto& text_of) {
    expected += ",\n" + json_text(Json(name)) + ": ";
    bool first = true;
    for (const auto& [path, entry] : entries) {
      expected +=
          std::string(first ? "{\n  " : ",\n  ") + json_text(Json(path)) + ": " + text_of(entry);
      first = false;
    }
    expected += first ? "{}" : "\n}";
  };
  lines("images", record.images, [&](const Record::Image& image) {
    Map entry = stamped(image.stamp);
    entry["digest"] = image.digest;
    entry["recipe"] = image.recipe;
    entry["config"] = image.config;
    entry["sha256"] = image.sha256;
    return json_text(entry);
  });
  lines("sources", record.sources, [&](const Record::Source& source) {
    Map entry = stamped(source.stamp);
    entry["has_config"] = source.has_config;
    entry["shared_digest"] = source.shared_digest;
    entry["shared_drops_debug"] = source.shared_drops_debug;
    return json_text(entry);
  });
  lines("texts", record.texts, [&](const Record::Text& text) {
    Map entry = stamped(text.stamp);
    entry["text"] = text.text;
    return json_text(entry);
  });
  expected += ",\n\"root\": " + json_text(Json(record.root));
  lines("bootspecs", record.bootspecs, [&](const KnownBootspec& known) {
    Map entry = stamped(known.stamp);
    entry["file"] = known.file;
    entry["xen_efi"] = known.xen_efi;
    entry["kernel"] = known.kernel;
    if (known.initrd) entry["initrd"] = *known.initrd;
    return "{\"document\": " + *known.document + ", " + json_text(entry).substr(1);
  });
  expected += "\n}\n";

  std::string rest;
  render_record_rest(record, [&rest](std::string_view piece) { rest.append(piece); });
  EXPECT_EQ(rest, expected);

  std::string empty;
  render_record_rest(Record{}, [&empty](std::string_view piece) { empty.append(piece); });
  EXPECT_EQ(empty,
            ",\n\"images\": {},\n\"sources\": {},\n\"texts\": {},\n\"root\": \"\",\n"
            "\"bootspecs\": {}\n}\n");
}

// The memo is written by hand too, as json_text writes the JSON object of its
// fields.
TEST(JsonText, TheRecordsMemoIsJsonTextOfItsFields) {
  using Map = nlohmann::json;  // keys sorted, as the memo's object was built
  for (const bool full : {false, true}) {
    Record record;
    Memo memo;
    memo.inputs = std::string(32, '1');
    memo.images_seen = std::string(32, '2');
    if (full) {
      memo.host_files = {"/mnt/nix/store/t/boot.json", "/root/caf\xe9/\"xen\".efi"};
      memo.esp_files = {"EFI/Linux/k.efi", "EFI/nixos/i\n.efi"};
      memo.images = {{"EFI/xen/xen-generation-1.efi", 23},
                     {"EFI/xen/x\t.efi", std::numeric_limits<std::uint64_t>::max()}};
      memo.entries = std::numeric_limits<std::size_t>::max();
      memo.built = 7;
      memo.warnings = {"nixos-generation-2: skipped: no xen", "\x01\xff"};
      memo.default_failure = "nixos-generation-\"2\"";
    }
    record.memo = memo;
    Map images = Map::object();
    for (const auto& [path, size] : memo.images) images[path] = size;
    const Map oracle{
        {"inputs", memo.inputs},
        {"images_seen", memo.images_seen},
        {"host_files", memo.host_files},
        {"esp_files", memo.esp_files},
        {"images", images},
        {"entries", memo.entries},
        {"built", memo.built},
        {"warnings", memo.warnings},
        {"default_failure", memo.default_failure ? Map(*memo.default_failure) : Map()}};
    const std::string text = render_record(record);
    std::string rest;
    render_record_rest(record, [&rest](std::string_view piece) { rest.append(piece); });
    const std::size_t start = text.find("\"memo\": ") + 8;
    ASSERT_TRUE(text.ends_with(rest));
    EXPECT_EQ(text.substr(start, text.size() - rest.size() - start), json_text(oracle));
  }
}

}  // namespace
}  // namespace xbb
