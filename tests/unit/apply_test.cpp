#include <gtest/gtest.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <sstream>
#include <variant>

#include "esp_fixture.hpp"
#include "xbb/digest.hpp"
#include "xbb/error.hpp"
#include "xbb/esp.hpp"
#include "xbb/signer.hpp"

namespace {

using namespace esp_test;
using xbb::ApplyReport;
using xbb::Error;
using xbb::Esp;
using xbb::FileWrite;
using xbb::ImageRecipe;
using xbb::LaterWrite;
using xbb::Plan;
using xbb::SectionSource;

// A deterministic stand-in for the PE writer: the real xen.efi followed by
// each section's name and bytes. Applying a plan only needs the bytes to be a
// function of the recipe. Like the PE writer, it gives its bytes in pieces,
// and write() puts the first bytes last (as the CheckSum is), so that what
// reaches the file differs from what was appended. It counts the images it
// makes (written or streamed).
std::string concatenated_image(const ImageRecipe& recipe) {
  std::string bytes = read_file(recipe.xen_efi.path);
  for (const SectionSource& section : recipe.sections) {
    bytes += "\n" + section.name + "\n";
    if (const auto* text = std::get_if<std::string>(&section.content)) {
      bytes += *text;
    } else {
      bytes += read_file(std::get<xbb::HostFile>(section.content).path);
    }
  }
  return bytes;
}

std::span<const std::uint8_t> span_of(std::string_view bytes) {
  return {reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size()};
}

void stream_in_pieces(std::string_view bytes, xbb::ByteSink& sink) {
  constexpr std::size_t piece = 4093;
  for (std::size_t offset = 0; offset < bytes.size(); offset += piece)
    sink.write(span_of(bytes.substr(offset, piece)));
}

class ConcatenatingMaker : public xbb::ImageMaker {
 public:
  std::uint64_t size(const ImageRecipe& recipe) override {
    return concatenated_image(recipe).size();
  }
  std::vector<std::string> write(const ImageRecipe& recipe, xbb::FileSink& file) override {
    ++made;
    ++written;
    const std::string image = concatenated_image(recipe);
    const std::size_t head = std::min<std::size_t>(image.size(), 8);
    file.write(span_of(std::string(head, '?')));
    stream_in_pieces(std::string_view(image).substr(head), file);
    file.write_at(0, span_of(std::string_view(image).substr(0, head)));
    if (warn) return {"Authenticode signature dropped"};
    return {};
  }
  std::vector<std::string> stream(const ImageRecipe& recipe, xbb::ByteSink& sink) override {
    ++made;
    stream_in_pieces(concatenated_image(recipe), sink);
    if (warn) return {"Authenticode signature dropped"};
    return {};
  }
  std::optional<std::string> known_sha256(const ImageRecipe&) override { return known; }
  int made = 0;
  int written = 0;  // images made by write(), which patches bytes already written
  bool warn = false;
  std::optional<std::string> known;  // what known_sha256 says
};

// A stand-in signer: the signed file is "signed by fake\n" and the input,
// read from the open file the applier gives it. It keeps what it was given
// and fails when told to.
class FakeSigner : public xbb::Signer {
 public:
  const std::string& identity() const override { return identity_; }
  void sign(int input, int output) const override {
    if (fail) throw Error("signing failed (fake, exit status 1): no key");
    std::string bytes;
    char buffer[65536];
    for (off_t at = 0;;) {
      const ssize_t n = ::pread(input, buffer, sizeof buffer, at);
      if (n <= 0) break;
      bytes.append(buffer, static_cast<std::size_t>(n));
      at += n;
    }
    inputs.push_back(bytes);
    const std::string out = "signed by fake\n" + bytes;
    EXPECT_EQ(::ftruncate(output, 0), 0);
    EXPECT_EQ(::pwrite(output, out.data(), out.size(), 0), static_cast<ssize_t>(out.size()));
  }
  void check(int) const override {}

  std::string identity_ = "fake";
  bool fail = false;
  mutable std::vector<std::string> inputs;
};

std::string record_hash_of(const fs::path& file) { return xbb::record_hash(read_file(file)); }

const std::string image_1 = "EFI/xen/xen-generation-1.efi";
const std::string image_2 = "EFI/xen/xen-generation-2.efi";
const std::string entry_1 = "loader/entries/xen-generation-1.conf";
const std::string entry_2 = "loader/entries/xen-generation-2.conf";
const std::string loader_conf = "loader/loader.conf";
const std::string stale_legacy = "EFI/nixos/xen-generation-0.efi";
const std::string stale_entry = "loader/entries/xen-generation-0.conf";

class ApplyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ::umask(022);
    write_file(host.path() / "bzImage", "kernel bytes");
  }

  // Two generations of unified images (one with its kernel inside), their
  // entries, a retargeted default, and the stale files of generation 0.
  Plan sample_plan() const {
    Plan plan;
    const xbb::HostFile xen{xen_efi(), {}, {}};
    plan.images = {
        {image_1, ImageRecipe{xen, {{".config", std::string("[global]\ndefault=g1\n")}}, true, ""},
         std::nullopt},
        {image_2,
         ImageRecipe{xen,
                     {{".config", std::string("[global]\ndefault=g2\n")},
                      {".kernel", xbb::HostFile{host.path() / "bzImage", {}, {}}}},
                     true,
                     ""},
         std::nullopt},
    };
    plan.entries = {
        {entry_1,
         std::string("title NixOS (with Xen Hypervisor)\nefi /EFI/xen/xen-generation-1.efi\n"),
         std::nullopt},
        {entry_2,
         std::string("title NixOS (with Xen Hypervisor)\nefi /EFI/xen/xen-generation-2.efi\n"),
         std::nullopt},
    };
    plan.loader_conf = "default xen-generation-2.conf\ntimeout 3\n";
    plan.removals = {stale_legacy, stale_entry};
    return plan;
  }

  // What the ESP holds before the sample plan: the previous run's files.
  static void write_previous_run(const fs::path& esp_root) {
    write_file(esp_root / loader_conf, "default nixos-generation-2.conf\ntimeout 3\n");
    write_file(esp_root / stale_legacy, "legacy image");
    write_file(esp_root / stale_entry, "title old\n");
  }

  static std::string expected_image(const Plan& plan, std::size_t index) {
    return concatenated_image(std::get<ImageRecipe>(plan.images.at(index).content));
  }

  static fs::path made(const fs::path& folder) {
    fs::create_directories(folder);
    return folder;
  }

  ConcatenatingMaker maker;
  TempDir host;
  TempDir dir;
  fs::path root = made(dir.path() / "esp");
  fs::path outside = host.path();
};

TEST_F(ApplyTest, FirstRunWritesEverythingThenRemovesStaleFiles) {
  write_previous_run(root);
  Esp esp(root);
  const Plan plan = sample_plan();

  ApplyReport report = xbb::apply_plan(esp, plan, maker);

  EXPECT_EQ(report.written,
            (std::vector<std::string>{image_1, image_2, entry_1, entry_2, loader_conf}));
  EXPECT_EQ(report.unchanged, std::vector<std::string>{});
  EXPECT_EQ(report.removed, (std::vector<std::string>{stale_legacy, stale_entry}));
  EXPECT_EQ(read_file(root / image_1), expected_image(plan, 0));
  EXPECT_EQ(read_file(root / image_2), expected_image(plan, 1));
  EXPECT_NE(read_file(root / image_2).find("kernel bytes"), std::string::npos);
  EXPECT_EQ(read_file(root / entry_2),
            "title NixOS (with Xen Hypervisor)\nefi /EFI/xen/xen-generation-2.efi\n");
  EXPECT_EQ(read_file(root / loader_conf), "default xen-generation-2.conf\ntimeout 3\n");
  EXPECT_FALSE(fs::exists(fs::symlink_status(root / stale_legacy)));
  EXPECT_FALSE(fs::exists(fs::symlink_status(root / stale_entry)));
  EXPECT_EQ(temporaries_under(root), std::vector<std::string>{});
  // Each image is made once: its size came from the maker, not from making it.
  EXPECT_EQ(maker.made, 2);
  ASSERT_EQ(report.images.size(), 2u);
  EXPECT_EQ(report.images.at(image_1).digest, record_hash_of(root / image_1));
  EXPECT_EQ(report.images.at(image_1).stamp.size, fs::file_size(root / image_1));
  EXPECT_EQ(report.images.at(image_2).stamp.mtime_ns,
            lstat_of(root / image_2).st_mtim.tv_sec * 1000000000ll +
                lstat_of(root / image_2).st_mtim.tv_nsec);
}

// The planner gives an image that replaces a file the digest of that file:
// the image is streamed once through RecordHash, and not written when equal.
TEST_F(ApplyTest, AnImageEqualToTheFileItReplacesIsNotWritten) {
  write_previous_run(root);
  Esp esp(root);
  xbb::apply_plan(esp, sample_plan(), maker);
  const Snapshot after_first = snapshot(root);

  Plan again = sample_plan();
  again.images[0].replaces_digest = record_hash_of(root / image_1);
  again.images[1].replaces_digest = record_hash_of(root / image_2);
  again.entries.clear();
  again.loader_conf.reset();
  maker.made = 0;
  ApplyReport report = xbb::apply_plan(esp, again, maker);

  EXPECT_EQ(report.written, std::vector<std::string>{});
  EXPECT_EQ(report.unchanged, (std::vector<std::string>{image_1, image_2}));
  EXPECT_EQ(report.removed, std::vector<std::string>{});
  EXPECT_EQ(maker.made, 2);
  EXPECT_EQ(snapshot(root), after_first);

  again.images[1].replaces_digest = std::string(64, '0');
  report = xbb::apply_plan(esp, again, maker);
  EXPECT_EQ(report.written, std::vector<std::string>{image_2});
}

TEST_F(ApplyTest, OnlyWhatThePlanWritesIsWritten) {
  Esp esp(root);
  Plan plan = sample_plan();
  xbb::apply_plan(esp, plan, maker);
  Snapshot expected = snapshot(root);

  plan.images.clear();
  plan.loader_conf.reset();
  plan.entries.resize(1);
  plan.entries[0].content = std::string(
      "title NixOS (with Xen Hypervisor)\nefi /EFI/xen/xen-generation-1.efi\nsort-key a\n");
  ApplyReport report = xbb::apply_plan(esp, plan, maker);

  EXPECT_EQ(report.written, std::vector<std::string>{entry_1});
  Snapshot after = snapshot(root);
  EXPECT_NE(after.at(entry_1).inode, expected.at(entry_1).inode);
  EXPECT_EQ(after.at(entry_1).content, std::get<std::string>(plan.entries[0].content));
  expected.erase(entry_1);
  after.erase(entry_1);
  expected.erase("loader/entries");  // the folder's mtime changes with the rename
  after.erase("loader/entries");
  EXPECT_EQ(after, expected);
}

// Every change on the ESP as inotify saw it, in order: "<event> <path>".
class EspWatch {
 public:
  EspWatch(const fs::path& root, const std::vector<std::string>& folders)
      : fd_(::inotify_init1(IN_NONBLOCK)) {
    if (fd_ < 0) fail("inotify_init1");
    for (const std::string& folder : folders) {
      int wd = ::inotify_add_watch(fd_, (root / folder).c_str(),
                                   IN_CLOSE_WRITE | IN_MOVED_FROM | IN_MOVED_TO | IN_DELETE);
      if (wd < 0) fail("inotify_add_watch " + folder);
      folders_[wd] = folder;
    }
  }
  EspWatch(const EspWatch&) = delete;
  EspWatch& operator=(const EspWatch&) = delete;
  ~EspWatch() { ::close(fd_); }

  std::vector<std::string> events() {
    std::vector<std::string> seen;
    alignas(inotify_event) char buffer[65536];
    ssize_t length;
    while ((length = ::read(fd_, buffer, sizeof buffer)) > 0) {
      for (char* at = buffer; at < buffer + length;) {
        const auto* event = reinterpret_cast<const inotify_event*>(at);
        const std::string path = folders_.at(event->wd) + "/" + event->name;
        if (event->mask & IN_CLOSE_WRITE) seen.push_back("close_write " + path);
        if (event->mask & IN_MOVED_FROM) seen.push_back("moved_from " + path);
        if (event->mask & IN_MOVED_TO) seen.push_back("moved_to " + path);
        if (event->mask & IN_DELETE) seen.push_back("delete " + path);
        at += sizeof(inotify_event) + event->len;
      }
    }
    return seen;
  }

 private:
  int fd_;
  std::map<int, std::string> folders_;
};

bool is_temporary_event(const std::string& event) {
  return event.find(".xbb-tmp-") != std::string::npos;
}

TEST_F(ApplyTest, ImagesThenEntriesThenLoaderConfThenRemovalsEachFromAWrittenTemporary) {
  write_previous_run(root);
  fs::create_directories(root / "EFI/xen");
  Esp esp(root);
  EspWatch watch(root, {"EFI/xen", "EFI/nixos", "loader", "loader/entries"});

  xbb::apply_plan(esp, sample_plan(), maker);
  const std::vector<std::string> events = watch.events();

  std::vector<std::string> final_names;
  for (const std::string& event : events) {
    if (!is_temporary_event(event)) final_names.push_back(event);
  }
  EXPECT_EQ(final_names, (std::vector<std::string>{
                             "moved_to " + image_1,
                             "moved_to " + image_2,
                             "moved_to " + entry_1,
                             "moved_to " + entry_2,
                             "moved_to " + loader_conf,
                             "delete " + stale_legacy,
                             "delete " + stale_entry,
                         }));
  // Each final name appears by renaming a temporary that was written and
  // closed just before, in the same folder.
  for (std::size_t i = 0; i < events.size(); ++i) {
    if (events[i].rfind("moved_to ", 0) != 0) continue;
    const std::string final_path = events[i].substr(std::strlen("moved_to "));
    ASSERT_GE(i, 2u) << events[i];
    EXPECT_EQ(events[i - 1].rfind("moved_from " + final_path + ".xbb-tmp-", 0), 0u)
        << events[i - 1];
    EXPECT_EQ(events[i - 2].rfind("close_write " + final_path + ".xbb-tmp-", 0), 0u)
        << events[i - 2];
  }
}

TEST_F(ApplyTest, TemporariesOfAnInterruptedRunAreRemoved) {
  write_previous_run(root);
  write_file(root / "EFI/xen/xen-generation-1.efi.xbb-tmp-0123456789abcdef", "half an image");
  write_file(root / "loader/entries/xen-generation-1.conf.xbb-tmp-fedcba9876543210", "title half");
  write_file(root / "loader/loader.conf.xbb-tmp-00000000deadbeef", "def");
  write_file(root / "EFI/xen/kept.efi", "not ours to judge");
  Esp esp(root);

  xbb::apply_plan(esp, Plan{}, maker);

  EXPECT_EQ(temporaries_under(root), std::vector<std::string>{});
  EXPECT_EQ(read_file(root / "EFI/xen/kept.efi"), "not ours to judge");
  EXPECT_EQ(read_file(root / loader_conf), "default nixos-generation-2.conf\ntimeout 3\n");
}

TEST_F(ApplyTest, LoaderConfGoesToTheEspWhenTheEntriesAreOnXbootldr) {
  const fs::path esp_root = outside / "esp";
  write_file(esp_root / "loader/loader.conf", "default nixos-generation-2.conf\n");
  write_file(esp_root / "loader/loader.conf.xbb-tmp-00000000deadbeef", "def");
  Esp xbootldr(root);
  Esp esp(esp_root);
  Plan plan;
  plan.entries = {{entry_1, std::string("title NixOS\n"), std::nullopt}};
  plan.loader_conf = "default xen-generation-1.conf\n";

  const ApplyReport report = xbb::apply_plan(xbootldr, plan, maker, nullptr, std::nullopt, &esp);

  EXPECT_EQ(read_file(esp_root / loader_conf), "default xen-generation-1.conf\n");
  EXPECT_FALSE(fs::exists(root / loader_conf));
  EXPECT_EQ(read_file(root / entry_1), "title NixOS\n");
  EXPECT_EQ(temporaries_under(esp_root), std::vector<std::string>{});
  EXPECT_EQ(report.written, (std::vector<std::string>{entry_1, loader_conf}));
}

TEST_F(ApplyTest, SymlinkPlantedAtAnImageNameIsReplacedAndItsTargetUntouched) {
  write_file(outside / "target", "outside the ESP\n");
  fs::create_directories(root / "EFI/xen");
  fs::create_symlink(outside / "target", root / image_1);
  Esp esp(root);
  const Plan plan = sample_plan();

  xbb::apply_plan(esp, plan, maker);

  EXPECT_EQ(read_file(outside / "target"), "outside the ESP\n");
  EXPECT_TRUE(S_ISREG(lstat_of(root / image_1).st_mode));
  EXPECT_EQ(read_file(root / image_1), expected_image(plan, 0));
}

TEST_F(ApplyTest, SymlinkedEntriesFolderStopsTheRunBeforeAnyWrite) {
  write_previous_run(root);
  fs::remove_all(root / "loader/entries");
  fs::create_directories(outside / "entries");
  fs::create_directory_symlink(outside / "entries", root / "loader/entries");
  Esp esp(root);
  const Snapshot before = snapshot(root);

  EXPECT_EQ(
      error_from([&] { xbb::apply_plan(esp, sample_plan(), maker); }),
      (root / "loader/entries").string() + ": is a symlink; symlinks on the ESP are not followed");

  EXPECT_EQ(snapshot(root), before);
  EXPECT_TRUE(fs::is_empty(outside / "entries"));
}

TEST_F(ApplyTest, InvalidPathAnywhereInThePlanChangesNothing) {
  write_previous_run(root);
  write_file(dir.path() / "victim", "victim\n");
  Esp esp(root);
  const Snapshot before = snapshot(root);

  Plan plan = sample_plan();
  plan.removals.push_back("../victim");
  EXPECT_EQ(error_from([&] { xbb::apply_plan(esp, plan, maker); }),
            "ESP path \"../victim\": component \"..\" not allowed");

  plan = sample_plan();
  plan.entries.push_back(
      {"loader/entries/xen-x.conf\ndefault evil", std::string("title x\n"), std::nullopt});
  EXPECT_EQ(
      error_from([&] { xbb::apply_plan(esp, plan, maker); }),
      "ESP path \"loader/entries/xen-x.conf\\x0adefault evil\": character \"\\x0a\" not allowed "
      "(only A-Z a-z 0-9 + _ . -)");

  EXPECT_EQ(snapshot(root), before);
  EXPECT_EQ(read_file(dir.path() / "victim"), "victim\n");
}

TEST_F(ApplyTest, PlanThatWritesAndRemovesTheSamePathIsRefused) {
  Esp esp(root);
  Plan plan = sample_plan();
  plan.removals.push_back(entry_1);

  EXPECT_EQ(error_from([&] { xbb::apply_plan(esp, plan, maker); }),
            entry_1 + ": the plan both writes and removes this path");
  EXPECT_TRUE(fs::is_empty(root));
}

TEST_F(ApplyTest, FolderAtAWrittenNameStopsTheRunBeforeAnyWrite) {
  write_previous_run(root);
  fs::create_directories(root / entry_2);
  Esp esp(root);
  const Snapshot before = snapshot(root);

  EXPECT_EQ(error_from([&] { xbb::apply_plan(esp, sample_plan(), maker); }),
            (root / entry_2).string() + ": is not a regular file; refusing to replace it");
  EXPECT_EQ(snapshot(root), before);
}

TEST_F(ApplyTest, MakerWarningsAreReportedWithTheImagePath) {
  Esp esp(root);
  maker.warn = true;

  ApplyReport report = xbb::apply_plan(esp, sample_plan(), maker);

  EXPECT_EQ(report.warnings,
            (std::vector<std::string>{image_1 + ": Authenticode signature dropped",
                                      image_2 + ": Authenticode signature dropped"}));
}

std::uint64_t round_up(std::uint64_t value, std::uint64_t unit) {
  return (value + unit - 1) / unit * unit;
}

// A signed image: made into a first temporary, signed from it into a
// second, renamed into place; the digest kept is that of the signed file.
TEST_F(ApplyTest, SignedImageIsMadeThenSignedIntoPlace) {
  Plan plan = sample_plan();
  std::get<ImageRecipe>(plan.images[0].content).signer = "fake";
  FakeSigner signer;
  Esp esp(root);

  const ApplyReport report = xbb::apply_plan(esp, plan, maker, &signer);

  const std::string made_image = expected_image(plan, 0);
  ASSERT_EQ(signer.inputs.size(), 1u) << "only one image is signed";
  EXPECT_TRUE(signer.inputs[0] == made_image);
  EXPECT_TRUE(read_file(root / image_1) == "signed by fake\n" + made_image);
  EXPECT_EQ(report.images.at(image_1).digest, record_hash_of(root / image_1));
  EXPECT_TRUE(read_file(root / image_2) == expected_image(plan, 1)) << "its recipe names no signer";
  EXPECT_EQ(temporaries_under(root), std::vector<std::string>{});
}

// A signed image is made even when the plan gives the digest of the file it
// replaces and the unsigned bytes are equal: who signed it is not in them.
TEST_F(ApplyTest, SignedImageIsSignedAgainWhateverItReplaces) {
  Plan plan = sample_plan();
  auto& recipe = std::get<ImageRecipe>(plan.images[0].content);
  recipe.signer = "fake";
  write_file(root / image_1, concatenated_image(recipe));
  plan.images[0].replaces_digest = record_hash_of(root / image_1);
  FakeSigner signer;
  Esp esp(root);

  xbb::apply_plan(esp, plan, maker, &signer);

  EXPECT_TRUE(read_file(root / image_1) == "signed by fake\n" + concatenated_image(recipe));
}

TEST_F(ApplyTest, SigningThatFailsLeavesTheOldImageAndNoTemporaries) {
  write_file(root / image_1, "the old image");
  Plan plan = sample_plan();
  std::get<ImageRecipe>(plan.images[0].content).signer = "fake";
  FakeSigner signer;
  signer.fail = true;
  Esp esp(root);

  EXPECT_EQ(error_from([&] { xbb::apply_plan(esp, plan, maker, &signer); }),
            (root / image_1).string() + ": signing failed (fake, exit status 1): no key");

  EXPECT_EQ(read_file(root / image_1), "the old image");
  EXPECT_FALSE(fs::exists(root / entry_1));
  EXPECT_EQ(temporaries_under(root), std::vector<std::string>{});
}

TEST_F(ApplyTest, PlanThatSignsWithAKeyTheRunLacksChangesNothing) {
  Plan plan = sample_plan();
  std::get<ImageRecipe>(plan.images[1].content).signer = "fake";
  const Snapshot before = snapshot(root);
  Esp esp(root);
  const std::string refused =
      (root / image_2).string() + ": the plan signs this image with a key the run was not given";

  EXPECT_EQ(error_from([&] { xbb::apply_plan(esp, plan, maker); }), refused);
  FakeSigner other;
  other.identity_ = "other";
  EXPECT_EQ(error_from([&] { xbb::apply_plan(esp, plan, maker, &other); }), refused);

  EXPECT_EQ(snapshot(root), before);
}

TEST_F(ApplyTest, TooLittleSpaceIsRefusedWithTheMissingBytesAndNothingChanges) {
  Tmpfs tmpfs("size=1m");
  write_previous_run(tmpfs.path());
  const Plan plan = sample_plan();
  // The rule: every changed file's size rounded up to the allocation unit,
  // plus one unit, at the peak of the one-at-a-time writes. Here every file
  // but loader.conf is new and loader.conf comes last, so the peak is the sum.
  struct statvfs stats {};
  ASSERT_EQ(::statvfs(tmpfs.path().c_str(), &stats), 0);
  const std::uint64_t unit = stats.f_frsize;
  const std::uint64_t have = stats.f_bavail * stats.f_frsize;
  std::uint64_t need = 0;
  for (std::size_t i = 0; i < plan.images.size(); ++i)
    need += round_up(expected_image(plan, i).size(), unit) + unit;
  for (const FileWrite& entry : plan.entries)
    need += round_up(std::get<std::string>(entry.content).size(), unit) + unit;
  need += round_up(plan.loader_conf->size(), unit) + unit;
  ASSERT_GT(need, have);
  const Snapshot before = snapshot(tmpfs.path());

  {
    Esp esp(tmpfs.path());
    EXPECT_EQ(error_from([&] { xbb::apply_plan(esp, plan, maker); }),
              "not enough space on " + tmpfs.path().string() + ": need " +
                  std::to_string(need - have) + " bytes more (have " + std::to_string(have) +
                  ", need " + std::to_string(need) + ")");
  }

  EXPECT_EQ(snapshot(tmpfs.path()), before);
}

// While a signed image is signed, its unsigned input is on the ESP too; the
// signature adds up to 64 KiB.
TEST_F(ApplyTest, RoomForASignedImageCountsItsUnsignedInput) {
  Tmpfs tmpfs("size=1m");
  Plan plan = sample_plan();
  plan.images.resize(1);
  plan.entries.clear();
  plan.loader_conf.reset();
  plan.removals.clear();
  std::get<ImageRecipe>(plan.images[0].content).signer = "fake";
  struct statvfs stats {};
  ASSERT_EQ(::statvfs(tmpfs.path().c_str(), &stats), 0);
  const std::uint64_t unit = stats.f_frsize;
  const std::uint64_t have = stats.f_bavail * stats.f_frsize;
  const std::uint64_t size = expected_image(plan, 0).size();
  const std::uint64_t need = round_up(size + (64 << 10), unit) + unit + round_up(size, unit) + unit;
  ASSERT_GT(need, have);
  FakeSigner signer;
  Esp esp(tmpfs.path());

  EXPECT_EQ(error_from([&] { xbb::apply_plan(esp, plan, maker, &signer); }),
            "not enough space on " + tmpfs.path().string() + ": need " +
                std::to_string(need - have) + " bytes more (have " + std::to_string(have) +
                ", need " + std::to_string(need) + ")");
  EXPECT_TRUE(signer.inputs.empty());
}

TEST_F(ApplyTest, ReplacingFilesNeedsRoomForOneNewFileAtATime) {
  Tmpfs tmpfs("size=1m");
  const std::string first = "EFI/xen/xen-generation-1.efi";
  const std::string second = "EFI/xen/xen-generation-2.efi";
  write_file(tmpfs.path() / first, std::string(300000, 'a'));
  write_file(tmpfs.path() / second, std::string(300000, 'b'));
  Plan plan;
  plan.images = {{first, std::string(300000, 'c'), std::nullopt},
                 {second, std::string(300000, 'd'), std::nullopt}};
  struct statvfs stats {};
  ASSERT_EQ(::statvfs(tmpfs.path().c_str(), &stats), 0);
  const std::uint64_t have = stats.f_bavail * stats.f_frsize;
  // Room for one new image beside the old ones, not for both new ones.
  ASSERT_GT(have, 300000u + 2 * stats.f_frsize);
  ASSERT_LT(have, 600000u);

  Esp esp(tmpfs.path());
  ApplyReport report = xbb::apply_plan(esp, plan, maker);

  EXPECT_EQ(report.written, (std::vector<std::string>{first, second}));
  EXPECT_EQ(read_file(tmpfs.path() / first), std::string(300000, 'c'));
  EXPECT_EQ(read_file(tmpfs.path() / second), std::string(300000, 'd'));
}

// The record is written after the plan: the check counts it, last.
TEST_F(ApplyTest, FreeSpaceCheckCountsTheFileWrittenAfterThePlan) {
  Tmpfs tmpfs("size=1m");
  const std::string config = "EFI/xen/xen-generation-1.cfg";
  Plan plan;
  plan.images = {{config, std::string(300000, 'c'), std::nullopt}};
  struct statvfs stats {};
  ASSERT_EQ(::statvfs(tmpfs.path().c_str(), &stats), 0);
  const std::uint64_t unit = stats.f_frsize;
  const std::uint64_t have = stats.f_bavail * stats.f_frsize;
  const std::uint64_t plan_need = round_up(300000, unit) + unit;
  const LaterWrite record{"EFI/xen/xen-boot-builder.json", have - plan_need};
  const std::uint64_t need = plan_need + round_up(record.size, unit) + unit;
  Esp esp(tmpfs.path());

  xbb::ErrorKind kind = xbb::ErrorKind::failed;
  EXPECT_EQ(error_from([&] {
              try {
                xbb::apply_plan(esp, plan, maker, nullptr, record);
              } catch (const xbb::Error& e) {
                kind = e.kind();
                throw;
              }
            }),
            "not enough space on " + tmpfs.path().string() + ": need " +
                std::to_string(need - have) + " bytes more (have " + std::to_string(have) +
                ", need " + std::to_string(need) + ")");
  EXPECT_EQ(kind, xbb::ErrorKind::esp_full);
  EXPECT_FALSE(fs::exists(tmpfs.path() / config));
  EXPECT_EQ(xbb::apply_plan(esp, plan, maker).written, std::vector<std::string>{config})
      << "without the later file, the plan fits";
}

TEST_F(ApplyTest, SpaceRunningOutMidRunIsAFullEsp) {
  Tmpfs tmpfs("size=16m");
  fs::create_directories(tmpfs.path() / "EFI/xen");
  tmpfs.remount("nr_inodes=" + std::to_string(tmpfs.used_inodes()));
  Plan plan;
  plan.images = {{"EFI/xen/xen-generation-1.cfg", std::string("text"), std::nullopt}};
  Esp esp(tmpfs.path());
  try {
    xbb::apply_plan(esp, plan, maker);
    ADD_FAILURE() << "no xbb::Error thrown";
  } catch (const xbb::Error& e) {
    EXPECT_EQ(e.kind(), xbb::ErrorKind::esp_full) << e.what();
  }
}

TEST_F(ApplyTest, SpaceRunningOutMidRunStopsWithoutTemporariesAndKeepsTheEspConsistent) {
  Tmpfs tmpfs("size=16m");
  write_previous_run(tmpfs.path());
  fs::create_directories(tmpfs.path() / "EFI/xen");
  // Another writer takes the space after the check: here, room for exactly one
  // more file (inode), while bytes are plentiful, so the check passes and the
  // second image cannot be created.
  tmpfs.remount("nr_inodes=" + std::to_string(tmpfs.used_inodes() + 1));
  const Plan plan = sample_plan();

  {
    Esp esp(tmpfs.path());
    EXPECT_EQ(error_from([&] { xbb::apply_plan(esp, plan, maker); }),
              (tmpfs.path() / image_2).string() +
                  ": cannot create temporary file: No space left on device");
  }

  EXPECT_EQ(read_file(tmpfs.path() / image_1), expected_image(plan, 0));
  EXPECT_FALSE(fs::exists(fs::symlink_status(tmpfs.path() / image_2)));
  EXPECT_FALSE(fs::exists(fs::symlink_status(tmpfs.path() / entry_1)));
  EXPECT_FALSE(fs::exists(fs::symlink_status(tmpfs.path() / entry_2)));
  EXPECT_EQ(read_file(tmpfs.path() / loader_conf), "default nixos-generation-2.conf\ntimeout 3\n");
  EXPECT_EQ(read_file(tmpfs.path() / stale_legacy), "legacy image");
  EXPECT_EQ(read_file(tmpfs.path() / stale_entry), "title old\n");
  EXPECT_EQ(temporaries_under(tmpfs.path()), std::vector<std::string>{});
}

TEST_F(ApplyTest, RunAfterAFailedRunFinishesTheJob) {
  Tmpfs tmpfs("size=16m");
  write_previous_run(tmpfs.path());
  fs::create_directories(tmpfs.path() / "EFI/xen");
  tmpfs.remount("nr_inodes=" + std::to_string(tmpfs.used_inodes() + 1));
  Plan plan = sample_plan();
  {
    Esp esp(tmpfs.path());
    EXPECT_THROW(xbb::apply_plan(esp, plan, maker), Error);
  }
  tmpfs.remount("nr_inodes=1000");

  // The next run's planner finds the first image written, with its digest.
  plan.images[0].replaces_digest = record_hash_of(tmpfs.path() / image_1);
  Esp esp(tmpfs.path());
  ApplyReport report = xbb::apply_plan(esp, plan, maker);

  EXPECT_EQ(report.unchanged, std::vector<std::string>{image_1});
  EXPECT_EQ(report.written, (std::vector<std::string>{image_2, entry_1, entry_2, loader_conf}));
  EXPECT_EQ(read_file(tmpfs.path() / image_2), expected_image(plan, 1));
  EXPECT_EQ(report.removed, (std::vector<std::string>{stale_legacy, stale_entry}));
}

// A field of /proc/self/status in KiB ("VmHWM", "VmRSS").
std::uint64_t status_kib(const std::string& field) {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.starts_with(field + ":")) return std::stoull(line.substr(field.size() + 1));
  }
  throw std::runtime_error("no " + field + " in /proc/self/status");
}

// The record hash of an image written by the program's maker is hashed as
// it is streamed (the CheckSum patched last) and is that of the file's final
// bytes; a shared image also gets the SHA-256 its name holds, no other does.
TEST_F(ApplyTest, AWrittenImageGetsTheRecordHashOfItsFinalBytes) {
  const std::string shared = "EFI/xen/xen-4.17-3fa9c2d1.efi";
  Plan plan = sample_plan();
  plan.images.push_back({shared, ImageRecipe{{xen_efi(), {}, {}}, {}, true, ""}, std::nullopt});
  Esp esp(root);
  xbb::PeImageMaker pe_maker;

  const ApplyReport report = xbb::apply_plan(esp, plan, pe_maker);

  ASSERT_EQ(report.images.size(), 3u);
  for (const auto& [path, written] : report.images) {
    const std::string bytes = read_file(root / path);
    EXPECT_EQ(written.digest, xbb::record_hash(bytes)) << path;
    EXPECT_EQ(written.stamp.size, bytes.size()) << path;
    EXPECT_EQ(written.sha256, path == shared ? xbb::sha256_hex(bytes) : "") << path;
  }
}

// Issue 18: a shared image, whose name holds the SHA-256 of its final bytes,
// is streamed in order through both its digests as it is written (the
// maker's stream()); write(), which patches bytes already written, would
// need the temporary read back for them. What the maker says is reported.
TEST_F(ApplyTest, ASharedImageIsStreamedThroughItsDigestsNotReadBack) {
  const std::string shared = "EFI/xen/xen-4.17-3fa9c2d1.efi";
  Plan plan;
  plan.images.push_back({shared, ImageRecipe{{xen_efi(), {}, {}}, {}, true, ""}, std::nullopt});
  Esp esp(root);
  ConcatenatingMaker maker;
  maker.warn = true;

  const ApplyReport report = xbb::apply_plan(esp, plan, maker);

  EXPECT_EQ(maker.written, 0);
  const std::string bytes = read_file(root / shared);
  EXPECT_EQ(bytes, concatenated_image(std::get<ImageRecipe>(plan.images[0].content)));
  const auto& written = report.images.at(shared);
  EXPECT_EQ(written.digest, xbb::record_hash(bytes));
  EXPECT_EQ(written.sha256, xbb::sha256_hex(bytes));
  EXPECT_EQ(written.stamp.size, bytes.size());
  EXPECT_EQ(report.warnings, std::vector<std::string>{shared + ": Authenticode signature dropped"});
}

// Issue 18: a shared image whose SHA-256 the maker knows already (computed
// once, when its xen.efi was checked) gets that digest: the image is made
// once (write(), its record hash taken as it is written) and not hashed
// again.
TEST_F(ApplyTest, ASharedImageGetsTheDigestItsMakerKnows) {
  const std::string shared = "EFI/xen/xen-4.17-3fa9c2d1.efi";
  Plan plan;
  plan.images.push_back({shared, ImageRecipe{{xen_efi(), {}, {}}, {}, true, ""}, std::nullopt});
  Esp esp(root);
  ConcatenatingMaker maker;
  maker.known = "3fa9c2d1" + std::string(56, '0');

  const ApplyReport report = xbb::apply_plan(esp, plan, maker);

  EXPECT_EQ(maker.made, 1);
  EXPECT_EQ(maker.written, 1);
  const std::string bytes = read_file(root / shared);
  EXPECT_EQ(report.images.at(shared).sha256, *maker.known);
  EXPECT_EQ(report.images.at(shared).digest, xbb::record_hash(bytes));
}

std::string record_hash_streamed(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  xbb::RecordHash hash;
  std::string chunk(1 << 20, '\0');
  while (in.read(chunk.data(), static_cast<std::streamsize>(chunk.size())) || in.gcount() > 0)
    hash.write(span_of(std::string_view(chunk.data(), static_cast<std::size_t>(in.gcount()))));
  return hash.hex();
}

// Issue 9 and 11: an image is never held whole. With a 200 MiB ramdisk,
// writing the image and then comparing it with the file written (the digest
// path) raises the peak RSS of the process (a forked child, whose peak is
// reset to its RSS before it starts) by far less than the ramdisk's size.
// The rise is what is bounded, not the peak: the child starts with the RSS of
// the test process that forked it, which a sanitizer's shadow memory and
// earlier tests in the same process make large.
TEST_F(ApplyTest, PeakMemoryStaysFarBelowAnImageWithA200MiBRamdisk) {
  constexpr std::uint64_t kRamdiskBytes = 200ull << 20;
  constexpr std::uint64_t kRiseLimitKib = 64 << 10;
  const fs::path initrd = host.path() / "initrd";
  write_file(initrd, "initrd start");
  fs::resize_file(initrd, kRamdiskBytes);  // sparse
  Plan plan;
  plan.images = {{image_1,
                  ImageRecipe{{xen_efi(), {}, {}},
                              {{".config", std::string("[global]\ndefault=g1\n")},
                               {".kernel", xbb::HostFile{host.path() / "bzImage", {}, {}}},
                               {".ramdisk", xbb::HostFile{initrd, {}, {}}}},
                              true,
                              ""},
                  std::nullopt}};

  const ChildResult child = in_child([&] {
    std::ofstream("/proc/self/clear_refs") << "5";  // resets VmHWM to the RSS now
    const std::uint64_t start = status_kib("VmHWM");
    Esp esp(root);
    xbb::PeImageMaker maker;
    const ApplyReport written = xbb::apply_plan(esp, plan, maker);
    Plan again = plan;
    again.images[0].replaces_digest = written.images.at(image_1).digest;
    const ApplyReport compared = xbb::apply_plan(esp, again, maker);
    return std::to_string(start) + " " + std::to_string(status_kib("VmHWM")) + " " +
           written.images.at(image_1).digest + " " +
           std::to_string(written.images.at(image_1).stamp.size) + " " +
           std::to_string(compared.unchanged.size());
  });
  ASSERT_EQ(child.exit_code, 0) << child.said;
  const std::string& said = child.said;

  std::istringstream fields(said);
  std::uint64_t start_kib = 0, peak_kib = 0, size = 0;
  std::string digest;
  std::size_t unchanged = 0;
  fields >> start_kib >> peak_kib >> digest >> size >> unchanged;
  std::cout << "peak RSS " << peak_kib << " KiB (" << start_kib << " KiB at the start) for an "
            << fs::file_size(root / image_1) << "-byte image\n";
  EXPECT_GT(fs::file_size(root / image_1), kRamdiskBytes);
  EXPECT_EQ(size, fs::file_size(root / image_1));
  EXPECT_EQ(digest, record_hash_streamed(root / image_1));
  EXPECT_EQ(unchanged, 1u);
  EXPECT_LT(peak_kib - start_kib, kRiseLimitKib);
  EXPECT_EQ(temporaries_under(root), std::vector<std::string>{});
}

}  // namespace
