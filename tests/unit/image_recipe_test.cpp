// PeImageMaker: the image it writes and streams is the one add_sections makes
// from the whole files; its host files are checked as when read whole, and
// one that changes size while it is read is an error naming it.
#include "xbb/image_recipe.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include "limits.hpp"
#include "pe_builder.hpp"
#include "pe_test_util.hpp"
#include "xbb/error.hpp"

namespace {

using xbb::test::error_of;

namespace fs = std::filesystem;
using Bytes = std::vector<std::uint8_t>;
using xbb::ImageRecipe;
using xbb::PeImageMaker;
using xbb::test::TempDir;

// A file in memory: appends, and rewrites within what it holds. `on_write`
// runs before each append.
class FileInMemory : public xbb::FileSink {
 public:
  void write(std::span<const std::uint8_t> piece) override {
    if (on_write) on_write();
    bytes.insert(bytes.end(), piece.begin(), piece.end());
  }
  void write_at(std::uint64_t offset, std::span<const std::uint8_t> piece) override {
    ASSERT_LE(offset + piece.size(), bytes.size());
    std::copy(piece.begin(), piece.end(), bytes.begin() + static_cast<std::ptrdiff_t>(offset));
  }
  Bytes bytes;
  std::function<void()> on_write;
};

class Collect : public xbb::ByteSink {
 public:
  void write(std::span<const std::uint8_t> piece) override {
    bytes.insert(bytes.end(), piece.begin(), piece.end());
  }
  Bytes bytes;
};

const std::string kConfig = "[global]\ndefault=xen\n\n[xen]\noptions=console=vga\n";

class PeImageMakerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // Over two chunks, and not a whole number of them.
    xbb::test::write_binary(ramdisk, xbb::test::pattern(2 * PeImageMaker::kChunkBytes + 17, 5));
  }

  ImageRecipe recipe(const fs::path& xen_efi, bool drop_debug) const {
    return {{xen_efi, {}, {}},
            {{".config", kConfig},
             {".kernel", xbb::HostFile{kernel, {}, {}}},
             {".ramdisk", xbb::HostFile{ramdisk, {}, {}}}},
            drop_debug,
            ""};
  }

  TempDir dir;
  fs::path kernel = xbb::test::deps_file("linux-image/boot/vmlinuz-6.1.0-57-amd64");
  fs::path ramdisk = dir / "initrd";
  PeImageMaker maker;
};

TEST_F(PeImageMakerTest, WritesAndStreamsWhatAddSectionsMakesFromTheWholeFiles) {
  for (const fs::path& xen_efi : {xbb::test::xen417_efi(), xbb::test::xen420_efi()}) {
    for (bool drop_debug : {false, true}) {
      SCOPED_TRACE(xen_efi.string() + (drop_debug ? ", debug dropped" : ", debug kept"));
      const xbb::pe::AddResult expected =
          xbb::pe::add_sections(xbb::test::read_binary(xen_efi),
                                {{".config", Bytes(kConfig.begin(), kConfig.end())},
                                 {".kernel", xbb::test::read_binary(kernel)},
                                 {".ramdisk", xbb::test::read_binary(ramdisk)}},
                                {drop_debug});

      FileInMemory written;
      EXPECT_EQ(maker.write(recipe(xen_efi, drop_debug), written), expected.warnings);
      Collect streamed;
      maker.stream(recipe(xen_efi, drop_debug), streamed);

      EXPECT_EQ(maker.size(recipe(xen_efi, drop_debug)), expected.file.size());
      EXPECT_TRUE(written.bytes == expected.file);
      EXPECT_TRUE(streamed.bytes == expected.file);
    }
  }
}

TEST_F(PeImageMakerTest, WarningsOfTheImageAreReturned) {
  for (const auto& [name, file] : xbb::test::fuzz_seeds()) {
    if (name == "signed.efi") xbb::test::write_binary(dir / name, file);
  }
  FileInMemory written;
  const std::vector<std::string> warnings = maker.write(recipe(dir / "signed.efi", true), written);
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find("dropped the Authenticode signature"), std::string::npos);
}

TEST_F(PeImageMakerTest, AHostFileThatChangesSizeWhileReadIsAnErrorNamingIt) {
  const auto size = fs::file_size(ramdisk);
  const std::string changed = ramdisk.string() + ": changed size while being read (it had " +
                              std::to_string(size) + " bytes when opened)";
  // The host files are open before the first byte is written: a change then
  // happens between taking the size and reading.
  for (const std::uintmax_t new_size : {size - 1, size + 1, std::uintmax_t{0}}) {
    SCOPED_TRACE(new_size);
    xbb::test::write_binary(ramdisk, xbb::test::pattern(size, 5));
    FileInMemory written;
    bool changed_once = false;
    written.on_write = [&] {
      if (!std::exchange(changed_once, true)) fs::resize_file(ramdisk, new_size);
    };
    EXPECT_EQ(error_of([&] { maker.write(recipe(xbb::test::xen417_efi(), true), written); }),
              changed);
  }
}

TEST_F(PeImageMakerTest, HostFilesAreCheckedAsWhenReadWhole) {
  const fs::path folder = dir / "folder";
  fs::create_directory(folder);
  const fs::path fifo = dir / "fifo";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  const fs::path huge = dir / "huge";
  xbb::test::write_binary(huge, {});
  fs::resize_file(huge, xbb::limits::kKernelBytes + 1);  // sparse

  const auto error_with_kernel = [&](const fs::path& path) {
    ImageRecipe with = recipe(xbb::test::xen417_efi(), true);
    with.sections[1].content = xbb::HostFile{path, {}, {}};
    FileInMemory written;
    Collect streamed;
    const std::string from_size = error_of([&] { maker.size(with); });
    EXPECT_EQ(error_of([&] { maker.stream(with, streamed); }), from_size);
    EXPECT_TRUE(streamed.bytes.empty());
    EXPECT_EQ(error_of([&] { maker.write(with, written); }), from_size);
    EXPECT_TRUE(written.bytes.empty());
    return from_size;
  };
  EXPECT_EQ(error_with_kernel(folder), folder.string() + ": is a folder, not a regular file");
  EXPECT_EQ(error_with_kernel(fifo), fifo.string() + ": is a FIFO, not a regular file");
  EXPECT_EQ(error_with_kernel(huge),
            huge.string() + ": " + std::to_string(xbb::limits::kKernelBytes + 1) +
                " bytes, more than the " + std::to_string(xbb::limits::kKernelBytes) +
                " a kernel may have");
  EXPECT_EQ(error_with_kernel(dir / "missing"),
            (dir / "missing").string() + ": cannot open: No such file or directory");
}

TEST_F(PeImageMakerTest, AnErrorOfTheLayoutNamesTheXenImage) {
  ImageRecipe empty_section = recipe(xbb::test::xen417_efi(), true);
  empty_section.sections[0].content = std::string();
  const std::string expected =
      xbb::test::xen417_efi().string() + ": new section \".config\": no contents";
  FileInMemory written;
  Collect streamed;
  EXPECT_EQ(error_of([&] { maker.size(empty_section); }), expected);
  EXPECT_EQ(error_of([&] { maker.write(empty_section, written); }), expected);
  EXPECT_EQ(error_of([&] { maker.stream(empty_section, streamed); }), expected);
}

}  // namespace

namespace {

// Issue 18: the SHA-256 of a shared image, computed once from the xen.efi
// read when it was checked, is known again to the maker that makes the image
// from the same bytes read again, and only then.
TEST_F(PeImageMakerTest, KnowsTheSharedDigestKeptForTheSameBytesOnly) {
  const fs::path xen_efi = dir / "xen.efi";
  Bytes bytes = xbb::test::read_binary(xbb::test::xen417_efi());
  xbb::test::write_binary(xen_efi, bytes);
  const std::string_view text(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  const ImageRecipe shared{{xen_efi, {}, {}}, {}, true, ""};

  xbb::SharedDigests digests;
  digests.keep(xen_efi, text, true, "kept for drop_debug");
  EXPECT_EQ(digests.find(xen_efi, text, true), "kept for drop_debug");
  EXPECT_EQ(digests.find(xen_efi, text, false), std::nullopt);
  EXPECT_EQ(digests.find(dir / "other.efi", text, true), std::nullopt);
  EXPECT_EQ(digests.find(xen_efi, text.substr(1), true), std::nullopt);

  EXPECT_EQ(PeImageMaker().known_sha256(shared), std::nullopt) << "no digests given";
  PeImageMaker knowing(&digests);
  EXPECT_EQ(knowing.known_sha256(shared), "kept for drop_debug");
  ImageRecipe kept_debug = shared;
  kept_debug.drop_debug_sections = false;
  EXPECT_EQ(knowing.known_sha256(kept_debug), std::nullopt);
  ImageRecipe with_section = shared;
  with_section.sections.push_back({".config", kConfig});
  EXPECT_EQ(knowing.known_sha256(with_section), std::nullopt);
  ImageRecipe signed_image = shared;
  signed_image.signer = "key";
  EXPECT_EQ(knowing.known_sha256(signed_image), std::nullopt);

  bytes[bytes.size() / 2] ^= 1;  // the same size, other bytes
  xbb::test::write_binary(xen_efi, bytes);
  EXPECT_EQ(PeImageMaker(&digests).known_sha256(shared), std::nullopt);
}

}  // namespace

namespace {

// Issue 18: the maker takes the bytes of the xen.efi the run checked (read
// once) instead of reading the file again; once taken, or when the maker
// needs another xen.efi, none are kept.
TEST_F(PeImageMakerTest, TakesTheXenEfiReadWhenCheckedInsteadOfReadingItAgain) {
  const fs::path xen_efi = dir / "xen.efi";
  xbb::test::write_binary(xen_efi, xbb::test::read_binary(xbb::test::xen417_efi()));
  const Bytes checked = xbb::test::read_binary(xbb::test::xen420_efi());
  const std::string checked_text(checked.begin(), checked.end());
  const ImageRecipe shared{{xen_efi, {}, {}}, {}, false, ""};

  xbb::SharedDigests digests;
  digests.keep_bytes(xen_efi, checked_text);
  PeImageMaker knowing(&digests);
  FileInMemory written;
  knowing.write(shared, written);
  EXPECT_TRUE(written.bytes == xbb::pe::add_sections(checked, {}, {false}).file)
      << "made from the bytes kept, not from the file";
  EXPECT_EQ(digests.take_bytes(xen_efi), std::nullopt) << "taken";

  digests.keep_bytes(xen_efi, checked_text);
  EXPECT_EQ(digests.take_bytes(dir / "other.efi"), std::nullopt);
  EXPECT_EQ(digests.take_bytes(xen_efi), std::nullopt) << "let go for another xen.efi";
}

}  // namespace
