// What a run reads to answer from the record's memo: the memo and the digest
// of the rest of the record, streamed from the file, and the images the memo
// names.
#include "xbb/memo.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <string>

#include "esp_fixture.hpp"
#include "pe_builder.hpp"
#include "xbb/layout.hpp"

namespace xbb {
namespace {

namespace fs = std::filesystem;
using esp_test::TempDir;
using esp_test::write_file;

// A record whose memo line and rest each span several of the pieces the
// record's start is read in (32 KiB).
Record large_record() {
  Record record;
  Memo memo;
  memo.inputs = std::string(32, '1');
  memo.images_seen = std::string(32, '2');
  for (int i = 0; i < 2000; ++i) {
    memo.host_files.push_back("/nix/store/" + std::to_string(i) + std::string(60, 'h') +
                              "-nixos-system/boot.json");
    record.texts["loader/entries/xen-generation-" + std::to_string(i) + ".conf"] = {
        {400, i}, "title NixOS\nefi /EFI/xen/xen-generation-" + std::to_string(i) + ".efi\n"};
  }
  memo.entries = memo.built = 2000;
  record.memo = memo;
  record.root = "/";
  return record;
}

TEST(ReadRecordMemo, ReadsTheMemoLineAndTellsTheLengthOfTheRestOfALargeRecord) {
  TempDir dir;
  const Record record = large_record();
  const std::string text = render_record(record);
  const std::size_t memo_line = text.find("\n\"images\"");
  ASSERT_GT(memo_line, std::size_t{3} << 16) << "the memo line spans pieces";
  ASSERT_GT(text.size() - memo_line, std::size_t{3} << 16) << "so does the rest";
  write_file(dir.path() / std::string(layout::kStateFile), text);

  const std::optional<RecordMemo> found = read_record_memo(Esp(dir.path()));
  ASSERT_TRUE(found);
  EXPECT_EQ(found->memo, *record.memo);
  std::string rest;
  render_record_rest(record, [&rest](std::string_view piece) { rest += piece; });
  EXPECT_EQ(found->rest_size, rest.size());
  EXPECT_EQ(record_rest_size(record), rest.size());
  EXPECT_TRUE(text.ends_with(rest));
}

TEST(ReadRecordMemo, NoneWithoutARecordOrAWholeMemoLine) {
  TempDir dir;
  const Esp esp(dir.path());
  EXPECT_EQ(read_record_memo(esp), std::nullopt) << "no record";
  const std::string text = render_record(large_record());
  const fs::path file = dir.path() / std::string(layout::kStateFile);
  write_file(file, text.substr(0, text.find("\n\"images\"") - 100));
  EXPECT_EQ(read_record_memo(esp), std::nullopt) << "cut inside the memo line";
  Record without = large_record();
  without.memo.reset();
  write_file(file, render_record(without));
  EXPECT_EQ(read_record_memo(esp), std::nullopt) << "a record without a memo";
  write_file(file, "{\n\"format\": \"something else\"}\n");
  EXPECT_EQ(read_record_memo(esp), std::nullopt) << "another file at the record's name";
}

TEST(RecordMemoLine, IsHeldOnceItsLineEndsOrTheTextIsNoRecord) {
  const std::string text = render_record(large_record());
  const std::size_t end = text.find(",\n\"images\"");
  EXPECT_FALSE(holds_memo_line(""));
  EXPECT_FALSE(holds_memo_line(text.substr(0, 20)));
  EXPECT_FALSE(holds_memo_line(text.substr(0, end)));
  EXPECT_TRUE(holds_memo_line(text.substr(0, end + 2)));
  EXPECT_TRUE(holds_memo_line("{\n\"format\": \"something else\""));
  EXPECT_TRUE(holds_memo_line("["));
}

// Images as the memo names them: good ones (EFI applications with the
// .config of the size recorded), one whose .config is of another size, and
// one that is no image.
class LookAtImagesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (int i = 0; i < 40; ++i)
      add_image(i, "[global]\ndefault=nixos-" + std::to_string(i) + "\n");
    add_image(40, "short");
    memo.images["EFI/xen/xen-generation-40.efi"] = 99;
    configs.erase("EFI/xen/xen-generation-40.efi");
    write_file(dir.path() / "EFI/xen/xen-generation-41.efi", "not an image");
    memo.images["EFI/xen/xen-generation-41.efi"] = 5;
  }

  void add_image(int number, const std::string& config) {
    test::SyntheticPe spec = test::xen_like();
    spec.sections.push_back({".config", {config.begin(), config.end()}, 0, 0x40000040});
    const std::vector<std::uint8_t> bytes = test::build_pe(spec);
    const std::string path = "EFI/xen/xen-generation-" + std::to_string(number) + ".efi";
    write_file(dir.path() / path, std::string(bytes.begin(), bytes.end()));
    memo.images[path] = config.size();
    configs[path] = config;
  }

  FileStamp stamp_of(const std::string& path) const {
    struct stat st {};
    EXPECT_EQ(::stat((dir.path() / path).c_str(), &st), 0);
    return {static_cast<std::uint64_t>(st.st_size),
            static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec};
  }

  TempDir dir;
  Esp esp{dir.path()};
  Memo memo;
  std::map<std::string, std::string> configs;  // of the good images
};

TEST_F(LookAtImagesTest, SeesEachGoodImageWithItsStampAndConfig) {
  const ImageSight sight = look_at_images(esp, memo);
  ASSERT_EQ(sight.size(), memo.images.size());
  for (const auto& [path, config] : configs) {
    ASSERT_TRUE(sight.at(path)) << path;
    EXPECT_EQ(sight.at(path)->first, stamp_of(path)) << path;
    EXPECT_EQ(sight.at(path)->second, config) << path;
  }
  EXPECT_EQ(sight.at("EFI/xen/xen-generation-40.efi"), std::nullopt) << ".config of another size";
  EXPECT_EQ(sight.at("EFI/xen/xen-generation-41.efi"), std::nullopt) << "no image";
}

}  // namespace
}  // namespace xbb
