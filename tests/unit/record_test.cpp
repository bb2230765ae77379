// The record of written images: what it keeps, and that anything it cannot
// vouch for reads as no record at all.
#include "xbb/record.hpp"

#include <gtest/gtest.h>

#include "xbb/error.hpp"
#include "xbb/layout.hpp"

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

// The record's rules: what it vouches for, when a xen.efi check is reused.

const std::string kUnified = "EFI/xen/xen-generation-1.efi";
const std::string kShared = "EFI/xen/xen-4.17.7-3fa9c2d1.efi";
const std::string kXenEfi = "/nix/store/x-xen/boot/xen.efi";

std::string marked_config() { return std::string(layout::kMarker) + "\n[global]\ndefault=nixos\n"; }

Record vouching_record() {
  Record record;
  record.images[kUnified] = {
      {2867200, 5}, std::string(64, 'a'), std::string(64, 'b'), marked_config()};
  record.images[kShared] = {
      {2500000, 6}, "3fa9c2d1" + std::string(56, 'c'), std::string(64, 'd'), ""};
  return record;
}

// What a run reads of an image that is still the one recorded.
ImageRead read_as_recorded(const Record::Image& recorded) {
  ImageRead read;
  read.stamp = recorded.stamp;
  read.efi_application = true;
  read.has_config = !recorded.config.empty();
  if (read.has_config) read.config = recorded.config;
  return read;
}

TEST(RecordVouches, OnlyForAnImageItListsWithTheStampListed) {
  const Record record = vouching_record();
  EXPECT_EQ(recorded_image(record, kUnified, {2867200, 5}), record.images.at(kUnified));
  EXPECT_EQ(recorded_image(std::nullopt, kUnified, {2867200, 5}), std::nullopt) << "no record";
  EXPECT_EQ(recorded_image(record, "EFI/xen/xen-other.efi", {2867200, 5}), std::nullopt)
      << "an image the record does not list";
  EXPECT_EQ(recorded_image(record, kUnified, {2867200, 7}), std::nullopt) << "touched since";
  EXPECT_EQ(recorded_image(record, kUnified, {2867201, 5}), std::nullopt) << "another size";
}

TEST(RecordVouches, ForAnImageWhoseStampHeadersAndConfigAreTheRecordedOnes) {
  const Record record = vouching_record();
  const Record::Image& unified = record.images.at(kUnified);
  const auto file = vouched_image(unified, "xen-generation-1.efi", read_as_recorded(unified));
  ASSERT_TRUE(file);
  EXPECT_EQ(file->text, marked_config());
  EXPECT_TRUE(file->ours) << "its recorded .config, now its own, carries the marker";
  EXPECT_EQ(file->stamp, unified.stamp);
  EXPECT_EQ(file->digest, unified.digest);
  EXPECT_EQ(file->recipe, unified.recipe);

  const Record::Image& shared = record.images.at(kShared);
  const auto shared_file =
      vouched_image(shared, "xen-4.17.7-3fa9c2d1.efi", read_as_recorded(shared));
  ASSERT_TRUE(shared_file) << "a shared image has no .config, and none is recorded";
  EXPECT_EQ(shared_file->text, "");
  EXPECT_TRUE(shared_file->ours) << "its name holds the recorded digest";
  EXPECT_EQ(shared_file->recipe, shared.recipe);
}

TEST(RecordVouches, NeverMakesAFileTheToolsByListingIt) {
  Record record = vouching_record();
  Record::Image& unified = record.images.at(kUnified);
  unified.config = "[global]\ndefault=nixos\n";  // no marker
  const auto hand_made = vouched_image(unified, "xen-generation-1.efi", read_as_recorded(unified));
  ASSERT_TRUE(hand_made);
  EXPECT_FALSE(hand_made->ours);

  Record::Image& shared = record.images.at(kShared);
  shared.digest = std::string(64, 'e');  // not the digest its name holds
  const auto misnamed = vouched_image(shared, "xen-4.17.7-3fa9c2d1.efi", read_as_recorded(shared));
  ASSERT_TRUE(misnamed);
  EXPECT_FALSE(misnamed->ours);
  const auto not_shared = vouched_image(shared, "xen-generation-2.efi", read_as_recorded(shared));
  ASSERT_TRUE(not_shared);
  EXPECT_FALSE(not_shared->ours) << "no marker, and not a shared image's name";
}

TEST(RecordVouches, NotForAnImageChangedSinceTheListing) {
  const Record record = vouching_record();
  const Record::Image& unified = record.images.at(kUnified);
  ImageRead read = read_as_recorded(unified);
  read.stamp.mtime_ns += 1;
  EXPECT_EQ(vouched_image(unified, "xen-generation-1.efi", read), std::nullopt);
}

TEST(RecordVouches, NotForAnImageWhoseHeadersAreNotAnEfiApplication) {
  const Record record = vouching_record();
  const Record::Image& unified = record.images.at(kUnified);
  ImageRead read = read_as_recorded(unified);
  read.efi_application = false;
  EXPECT_EQ(vouched_image(unified, "xen-generation-1.efi", read), std::nullopt);
  const Record::Image& shared = record.images.at(kShared);
  ImageRead shared_read = read_as_recorded(shared);
  shared_read.efi_application = false;
  EXPECT_EQ(vouched_image(shared, "xen-4.17.7-3fa9c2d1.efi", shared_read), std::nullopt);
}

TEST(RecordVouches, NotForAnImageWhoseConfigIsNotTheRecordedOne) {
  const Record record = vouching_record();
  const Record::Image& unified = record.images.at(kUnified);
  ImageRead other = read_as_recorded(unified);
  other.config->back() = '?';  // the same size, other bytes
  EXPECT_EQ(vouched_image(unified, "xen-generation-1.efi", other), std::nullopt);
  ImageRead other_size = read_as_recorded(unified);
  other_size.config.reset();  // not read: not the recorded .config's size
  EXPECT_EQ(vouched_image(unified, "xen-generation-1.efi", other_size), std::nullopt);
  ImageRead none = read_as_recorded(unified);
  none.has_config = false;
  none.config.reset();
  EXPECT_EQ(vouched_image(unified, "xen-generation-1.efi", none), std::nullopt)
      << "the recorded .config is gone";

  const Record::Image& shared = record.images.at(kShared);
  ImageRead with_config = read_as_recorded(shared);
  with_config.has_config = true;  // of a size other than the recorded none: not read
  EXPECT_EQ(vouched_image(shared, "xen-4.17.7-3fa9c2d1.efi", with_config), std::nullopt)
      << "a .config where the record says there is none";
}

Record source_record(std::string shared_digest, bool shared_drops_debug) {
  Record record;
  record.sources[kXenEfi] = {{2867000, 2}, false, std::move(shared_digest), shared_drops_debug};
  return record;
}

TEST(RecordReusesXenEfiCheck, WhenTheStampIsTheRecordedOne) {
  const Record record = source_record("", true);
  EXPECT_EQ(reused_source(record, kXenEfi, {2867000, 2}, false, true), record.sources.at(kXenEfi))
      << "no shared layout: the shared digest is not needed";
  EXPECT_EQ(reused_source(record, kXenEfi, {2867000, 2}, false, false), record.sources.at(kXenEfi));
  EXPECT_EQ(reused_source(record, kXenEfi, {2867000, 3}, false, true), std::nullopt)
      << "touched since";
  EXPECT_EQ(reused_source(record, kXenEfi, {2867001, 2}, false, true), std::nullopt)
      << "another size";
  EXPECT_EQ(reused_source(record, "/nix/store/y-xen/boot/xen.efi", {2867000, 2}, false, true),
            std::nullopt)
      << "a xen.efi the record does not list";
  EXPECT_EQ(reused_source(std::nullopt, kXenEfi, {2867000, 2}, false, true), std::nullopt)
      << "no record";
}

TEST(RecordReusesXenEfiCheck, ForTheSharedLayoutOnlyWithItsDigestForTheSameDebugChoice) {
  const std::string digest(64, 'e');
  const Record dropped = source_record(digest, true);
  EXPECT_EQ(reused_source(dropped, kXenEfi, {2867000, 2}, true, true), dropped.sources.at(kXenEfi));
  EXPECT_EQ(reused_source(dropped, kXenEfi, {2867000, 2}, true, false), std::nullopt)
      << "computed without the debug sections, wanted with them";
  const Record kept = source_record(digest, false);
  EXPECT_EQ(reused_source(kept, kXenEfi, {2867000, 2}, true, false), kept.sources.at(kXenEfi));
  EXPECT_EQ(reused_source(kept, kXenEfi, {2867000, 2}, true, true), std::nullopt)
      << "computed with the debug sections, wanted without them";
  EXPECT_EQ(reused_source(source_record("", true), kXenEfi, {2867000, 2}, true, true), std::nullopt)
      << "the shared digest was not computed";
  EXPECT_EQ(reused_source(kept, kXenEfi, {2867000, 3}, true, false), std::nullopt)
      << "touched since";
}

}  // namespace
}  // namespace xbb
