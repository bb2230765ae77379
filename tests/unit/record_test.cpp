// The record of written images: what it keeps, and that anything it cannot
// vouch for reads as no record at all.
#include "xbb/record.hpp"

#include <gtest/gtest.h>

#include <string>

#include "bootspec_document.hpp"
#include "xbb/digest.hpp"
#include "xbb/error.hpp"
#include "xbb/layout.hpp"

namespace xbb {
namespace {

constexpr std::string_view kBootJson = R"({
  "org.nixos.bootspec.v1": {
    "init": "/nix/store/t-nixos-system/init", "kernel": "/nix/store/k-linux/bzImage",
    "kernelParams": ["loglevel=4"], "label": "NixOS", "system": "x86_64-linux",
    "toplevel": "/nix/store/t-nixos-system"
  },
  "org.nixos.specialisation.v1": {"debug": {"org.nixos.bootspec.v1": {}}},
  "org.xenproject.bootspec.v2": {"efiPath": "/nix/store/x-xen/boot/xen.efi", "params": ["dom0_mem=1G"]}
})";

Record sample() {
  Record record;
  record.images["EFI/xen/xen-generation-1.efi"] = {{2867200, 1764650000123456789},
                                                   std::string(64, 'a'),
                                                   std::string(64, 'b'),
                                                   "[global]\ndefault=nixos\n",
                                                   ""};
  record.images["EFI/xen/xen-4.17.7-3fa9c2d1.efi"] = {{2500000, 1},
                                                      std::string(32, 'c'),
                                                      std::string(64, 'd'),
                                                      "",
                                                      "3fa9c2d1" + std::string(56, 'e')};
  record.sources["/nix/store/x-xen/boot/xen.efi"] = {
      {2867000, 2}, false, std::string(64, 'e'), true};
  record.texts["loader/entries/xen-generation-1.conf"] = {{412, 3}, "title NixOS\nefi /x.efi\n"};
  record.root = "/mnt";
  const BootspecDocument read = parse_bootspec_document(kBootJson, "boot.json");
  record.bootspecs["/nix/store/t-nixos-system"] = {
      "/mnt/nix/store/t-nixos-system/boot.json",
      {1358, 4},
      std::make_shared<const std::string>(read.document),
      std::make_shared<const Bootspec>(read.spec),
      "/mnt/nix/store/x-xen/boot/xen.efi",
      "/mnt/nix/store/k-linux/bzImage",
      std::nullopt};
  Memo memo;
  memo.inputs = std::string(32, '1');
  memo.images_seen = std::string(32, '2');
  memo.host_files = {"/mnt/nix/store/t-nixos-system/boot.json"};
  memo.esp_files = {"EFI/Linux/k.efi"};
  memo.images = {{"EFI/xen/xen-generation-1.efi", 23}};
  memo.entries = 1;
  memo.built = 1;
  memo.warnings = {"nixos-generation-2: skipped: no xen"};
  memo.default_failure = "nixos-generation-2";
  record.memo = memo;
  return record;
}

TEST(Record, ReadsBackWhatItWrites) {
  const std::string text = render_record(sample());
  EXPECT_EQ(parse_record(text), sample());
  EXPECT_EQ(render_record(*parse_record(text)), text) << "the same record gives the same text";
  EXPECT_EQ(parse_record(render_record(Record{})), Record{});
}

TEST(Record, KeepsABootspecWithoutItsSpecialisationsAndReadsItBackAsParsed) {
  const BootspecDocument read = parse_bootspec_document(kBootJson, "boot.json");
  EXPECT_EQ(read.document.find("specialisation"), std::string::npos);
  const Bootspec parsed = parse_bootspec(kBootJson, "boot.json");
  ASSERT_EQ(parsed.specialisations.size(), 0u);
  ASSERT_EQ(parsed.broken_specialisations.size(), 1u) << "the parent reads despite a broken one";
  const std::optional<Record> back = parse_record(render_record(sample()));
  ASSERT_TRUE(back);
  const Bootspec& kept = *back->bootspecs.at("/nix/store/t-nixos-system").spec;
  EXPECT_EQ(kept.toplevel, parsed.toplevel);
  EXPECT_EQ(kept.kernel_params, parsed.kernel_params);
  ASSERT_TRUE(kept.xen);
  EXPECT_EQ(kept.xen->efi_path, "/nix/store/x-xen/boot/xen.efi");
  EXPECT_EQ(kept.xen->params, std::vector<std::string>{"dom0_mem=1G"});
}

TEST(Record, ABootspecDocumentThatDoesNotReadMakesNoRecord) {
  std::string text = render_record(sample());
  const std::string field = "\"kernel\":\"/nix/store/k-linux/bzImage\"";
  ASSERT_NE(text.find(field), std::string::npos) << text;
  text.replace(text.find(field), field.size(), "\"kernel\":\"k-linux/bzImage\"");
  EXPECT_EQ(parse_record(text), std::nullopt)
      << "a relative kernel path, as parse_bootspec refuses";
}

TEST(Record, StreamedInPiecesThatReadBack) {
  std::string pieces;
  std::size_t count = 0;
  render_record(sample(), [&](std::string_view piece) {
    pieces.append(piece);
    ++count;
  });
  EXPECT_EQ(parse_record(pieces), sample());
  EXPECT_GT(count, 5u) << "a piece per entry, not the record made whole";
  std::string rest;
  render_record_rest(sample(), [&](std::string_view piece) { rest.append(piece); });
  EXPECT_EQ(read_memo(pieces).after, rest);
}

TEST(RecordMemo, IsReadFromItsOwnLineAlone) {
  const std::string text = render_record(sample());
  const MemoRead read = read_memo(text);
  EXPECT_EQ(read.memo, sample().memo);
  EXPECT_TRUE(text.ends_with(read.after));
  EXPECT_TRUE(read.after.starts_with(",\n\"images\""));
  // The rest of the record is not read: garbage after the memo line leaves it.
  const std::string damaged = text.substr(0, text.size() - read.after.size()) + ",\ngarbage";
  EXPECT_EQ(read_memo(damaged).memo, sample().memo);
  EXPECT_EQ(parse_record(damaged), std::nullopt);
}

TEST(RecordMemo, NoneWhenItsLineDoesNotReadOrTheRecordIsOfAnotherVersion) {
  Record without = sample();
  without.memo.reset();
  EXPECT_EQ(read_memo(render_record(without)).memo, std::nullopt);
  std::string text = render_record(sample());
  EXPECT_EQ(read_memo(text.substr(0, text.find(",\n\"images\"") - 5)).memo, std::nullopt)
      << "cut inside the memo";
  std::string bad = text;
  bad.replace(bad.find("\"built\":1"), 9, "\"built\":\"1\"");
  EXPECT_EQ(read_memo(bad).memo, std::nullopt) << "a field of the wrong type";
  for (const std::string& field :
       {std::string("\"built\":1,"), "\"inputs\":\"" + std::string(32, '1') + "\","}) {
    std::string missing = text;
    ASSERT_NE(missing.find(field), std::string::npos) << field;
    missing.erase(missing.find(field), field.size());
    EXPECT_EQ(read_memo(missing).memo, std::nullopt) << "without " << field;
  }
  const std::string version = "\"version\": " + std::to_string(kRecordVersion);
  std::string other = text;
  other.replace(other.find(version), version.size(), "\"version\": 99");
  EXPECT_EQ(read_memo(other).memo, std::nullopt);
}

TEST(RecordVouchesForText, OnlyWithTheStampRecordedAndOursOnlyByItsMarker) {
  Record record = sample();
  const std::string path = "loader/entries/xen-generation-1.conf";
  EXPECT_EQ(vouched_text(std::nullopt, path, {412, 3}), std::nullopt);
  EXPECT_EQ(vouched_text(record, path, {412, 4}), std::nullopt) << "touched";
  EXPECT_EQ(vouched_text(record, path, {413, 3}), std::nullopt) << "resized";
  EXPECT_EQ(vouched_text(record, "loader/entries/other.conf", {412, 3}), std::nullopt);
  auto vouched = vouched_text(record, path, {412, 3});
  ASSERT_TRUE(vouched);
  EXPECT_EQ(vouched->text, record.texts[path].text);
  EXPECT_FALSE(vouched->ours) << "no marker in the recorded text: not the tool's";
  record.texts[path].text = std::string(layout::kMarker) + "\ntitle NixOS\n";
  vouched = vouched_text(record, path, {412, 3});
  ASSERT_TRUE(vouched);
  EXPECT_TRUE(vouched->ours);
}

TEST(Record, AnythingDamagedOrForeignIsNoRecord) {
  const std::string text = render_record(sample());
  EXPECT_EQ(parse_record(""), std::nullopt);
  EXPECT_EQ(parse_record(text.substr(0, text.size() / 2)), std::nullopt) << "truncated";
  EXPECT_EQ(parse_record("garbage"), std::nullopt);
  std::string other_version = text;
  const std::string version = "\"version\": " + std::to_string(kRecordVersion);
  other_version.replace(other_version.find(version), version.size(),
                        "\"version\": " + std::to_string(kRecordVersion + 1));
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
      {2867200, 5}, std::string(32, 'a'), std::string(64, 'b'), marked_config(), ""};
  record.images[kShared] = {{2500000, 6},
                            std::string(32, 'c'),
                            std::string(64, 'd'),
                            "",
                            "3fa9c2d1" + std::string(56, 'c')};
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
  EXPECT_TRUE(shared_file->ours) << "its name holds the recorded SHA-256";
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
  shared.sha256 = std::string(64, 'e');  // not the digest its name holds
  // The record hash is no SHA-256: one that starts as the name does proves nothing.
  shared.digest = "3fa9c2d1" + std::string(24, 'e');
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

// The record hash of an image's bytes (RecordHash): one definition for the
// writer, which streams an image and patches its CheckSum last, and the
// reader, which hashes an image read whole.

std::span<const std::uint8_t> span_of(std::string_view text) {
  return {reinterpret_cast<const std::uint8_t*>(text.data()), text.size()};
}

constexpr std::size_t kPeHeader = 0x80;                 // e_lfanew of the sample
constexpr std::size_t kCheckSumField = kPeHeader + 88;  // PE signature, file header, CheckSum

// An image's bytes as the writer streams them: "MZ", e_lfanew, the PE
// signature there, a CheckSum field of zeros, `size` bytes in all.
std::string pe_like(std::size_t size) {
  std::string bytes(size, '\0');
  for (std::size_t i = 0; i < size; ++i) bytes[i] = static_cast<char>(i * 7 % 253);
  bytes.replace(0, 2, "MZ");
  bytes.replace(60, 4, std::string("\x80\0\0\0", 4));
  bytes.replace(kPeHeader, 4, std::string("PE\0\0", 4));
  bytes.replace(kCheckSumField, 4, std::string(4, '\0'));
  return bytes;
}

std::string with_checksum(std::string bytes, std::string_view checksum) {
  return bytes.replace(kCheckSumField, 4, checksum);
}

std::string xxh3_of(std::string_view bytes) { return Xxh3().update(span_of(bytes)).hex(); }

TEST(RecordHash, IsXxh3OfTheBytesWithTheCheckSumZeroedThenTheCheckSum) {
  const std::string image = with_checksum(pe_like(5000), "\x12\x34\x56\x78");
  EXPECT_EQ(record_hash(image), xxh3_of(pe_like(5000) + "\x12\x34\x56\x78"));
  EXPECT_EQ(record_hash(image).size(), 32u);
}

TEST(RecordHash, OfAnImageWrittenWithItsCheckSumLastIsThatOfItsFinalBytes) {
  const std::string streamed = pe_like(100000);
  const std::string final = with_checksum(streamed, "\xaa\xbb\xcc\xdd");
  for (const std::size_t piece : {std::size_t{1}, std::size_t{61}, std::size_t{4093}}) {
    RecordHash hash;
    for (std::size_t at = 0; at < streamed.size(); at += piece)
      hash.write(span_of(std::string_view(streamed).substr(at, piece)));
    ASSERT_TRUE(hash.rewritable(kCheckSumField, 4));
    hash.write_at(kCheckSumField, span_of("\xaa\xbb\xcc\xdd"));
    EXPECT_EQ(hash.size(), final.size());
    EXPECT_EQ(hash.hex(), record_hash(final)) << "pieces of " << piece;
  }
}

TEST(RecordHash, TellsImagesThatDifferOnlyInTheirCheckSumApart) {
  const std::string image = pe_like(5000);
  EXPECT_NE(record_hash(with_checksum(image, "\x01\0\0\0")), record_hash(image));
  EXPECT_NE(record_hash(with_checksum(image, "\x01\0\0\0")),
            record_hash(with_checksum(image, "\0\0\0\x01")));
  std::string other = image;
  other[4000] ^= 1;
  EXPECT_NE(record_hash(other), record_hash(image));
}

TEST(RecordHash, TakesAgainOnlyTheCheckSumFieldOnceStreamed) {
  RecordHash hash;
  const std::string image = pe_like(5000);
  hash.write(span_of(std::string_view(image).substr(0, kCheckSumField + 2)));
  EXPECT_FALSE(hash.rewritable(kCheckSumField, 4)) << "not streamed whole yet";
  hash.write(span_of(std::string_view(image).substr(kCheckSumField + 2)));
  EXPECT_TRUE(hash.rewritable(kCheckSumField + 1, 2));
  EXPECT_FALSE(hash.rewritable(kCheckSumField - 1, 4));
  EXPECT_FALSE(hash.rewritable(kCheckSumField + 1, 4));
  EXPECT_FALSE(hash.rewritable(0, 2));
  EXPECT_THROW(hash.write_at(0, span_of("MZ")), Error);
}

TEST(RecordHash, HashesAFileWithoutACheckSumFieldAsItIs) {
  EXPECT_EQ(record_hash(""), xxh3_of(""));
  EXPECT_EQ(record_hash("MZ short"), xxh3_of("MZ short")) << "shorter than a DOS header";
  std::string not_pe = pe_like(5000);
  not_pe[0] = 'X';
  EXPECT_EQ(record_hash(not_pe), xxh3_of(not_pe));
  const std::string cut =
      with_checksum(pe_like(5000), "\x01\x02\x03\x04").substr(0, kCheckSumField + 3);
  EXPECT_EQ(record_hash(cut), xxh3_of(cut)) << "ends within the field: it has none";
  RecordHash never_rewritten;
  never_rewritten.write(span_of(not_pe));
  EXPECT_FALSE(never_rewritten.rewritable(kCheckSumField, 4));
}

}  // namespace
}  // namespace xbb
