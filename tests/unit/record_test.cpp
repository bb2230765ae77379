// The record of written images: what it keeps, and that anything it cannot
// vouch for reads as no record at all.
#include "xbb/record.hpp"

#include <gtest/gtest.h>

#include "xbb/error.hpp"

namespace xbb {
namespace {

Record sample() {
  Record record;
  record.images["EFI/xen/xen-generation-1.efi"] = {{2867200, 1764650000123456789},
                                                   std::string(64, 'a'),
                                                   std::string(64, 'b'),
                                                   "[global]\ndefault=nixos\n"};
  record.images["EFI/xen/xen-4.17.7-3fa9c2d1.efi"] = {
      {2500000, 1}, std::string(64, 'c'), std::string(64, 'd'), ""};
  record.sources["/nix/store/x-xen/boot/xen.efi"] = {
      {2867000, 2}, false, std::string(64, 'e'), true};
  return record;
}

TEST(Record, ReadsBackWhatItWrites) {
  const std::string text = render_record(sample());
  EXPECT_EQ(parse_record(text), sample());
  EXPECT_EQ(render_record(*parse_record(text)), text) << "the same record gives the same text";
  EXPECT_EQ(parse_record(render_record(Record{})), Record{});
}

TEST(Record, AnythingDamagedOrForeignIsNoRecord) {
  const std::string text = render_record(sample());
  EXPECT_EQ(parse_record(""), std::nullopt);
  EXPECT_EQ(parse_record(text.substr(0, text.size() / 2)), std::nullopt) << "truncated";
  EXPECT_EQ(parse_record("garbage"), std::nullopt);
  std::string other_version = text;
  other_version.replace(other_version.find("\"version\": 1"), 12, "\"version\": 2");
  EXPECT_EQ(parse_record(other_version), std::nullopt);
  std::string wrong_type = text;
  wrong_type.replace(wrong_type.find("\"size\":2867200"), 14, "\"size\":\"many\"");
  EXPECT_EQ(parse_record(wrong_type), std::nullopt);
  EXPECT_EQ(parse_record("{\"format\": \"something else\", \"version\": 1}"), std::nullopt);
}

TEST(Record, ARecordOfMoreImagesThanTheEspCanHoldIsRefused) {
  const std::string text = render_record(sample());  // two images
  EXPECT_EQ(parse_record(text, 2), sample());
  try {
    parse_record(text, 1);
    FAIL() << "a record of 2 images was read with room for 1";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()),
              "it lists 2 images, more than the 1 an ESP of this size can hold (4 times over)");
  }
}

TEST(Record, TheBoundIsFourTimesTheImagesTheEspCanHold) {
  EXPECT_EQ(max_record_images(512ull << 20), 4u * 512);  // 512 MiB at 1 MiB an image
  EXPECT_EQ(max_record_images((512ull << 20) + 1), 4u * 512);
  EXPECT_EQ(max_record_images(100 << 10), 4u) << "an ESP too small for one image: 4";
  EXPECT_EQ(max_record_images(std::nullopt), std::numeric_limits<std::size_t>::max())
      << "a file system that reports no size bounds nothing";
}

TEST(Record, KeepsNoMemoryOfHandMadeFiles) {
  // An earlier version listed the files it had warned about ("foreign"); a
  // run warns about them every time, so the record neither keeps nor needs them.
  std::string text = render_record(sample());
  EXPECT_EQ(text.find("foreign"), std::string::npos);
  text.insert(text.rfind('}'), ",\"foreign\": [\"loader/entries/xen-custom.conf\"]\n");
  EXPECT_EQ(parse_record(text), sample());
}

}  // namespace
}  // namespace xbb
