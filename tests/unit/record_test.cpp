// The record of written images: what it keeps, and that anything it cannot
// vouch for reads as no record at all.
#include "xbb/record.hpp"

#include <gtest/gtest.h>

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
  record.foreign = {"loader/entries/xen-custom.conf"};
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

}  // namespace
}  // namespace xbb
