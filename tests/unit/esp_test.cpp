#include "xbb/esp.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <thread>

#include "esp_fixture.hpp"
#include "xbb/error.hpp"
#include "xbb/layout.hpp"

namespace {

using namespace esp_test;
using namespace std::chrono_literals;
using xbb::Error;
using xbb::Esp;
using xbb::EspFileType;
using xbb::EspLock;

constexpr std::uint64_t kLimit = 1 << 20;

std::vector<std::string> names_in(const fs::path& folder) {
  std::vector<std::string> names;
  for (const fs::directory_entry& entry : fs::directory_iterator(folder))
    names.push_back(entry.path().filename());
  std::sort(names.begin(), names.end());
  return names;
}

TEST(SplitEspPath, SplitsIntoComponents) {
  EXPECT_EQ(xbb::split_esp_path("EFI/xen/xen-generation-42+3-1.efi"),
            (std::vector<std::string>{"EFI", "xen", "xen-generation-42+3-1.efi"}));
  EXPECT_EQ(xbb::split_esp_path("loader/loader.conf"),
            (std::vector<std::string>{"loader", "loader.conf"}));
  EXPECT_EQ(xbb::split_esp_path("EFI/xen/.xen-boot-builder.lock").back(), ".xen-boot-builder.lock");
  EXPECT_EQ(xbb::split_esp_path("A_z.0-9+"), (std::vector<std::string>{"A_z.0-9+"}));
}

TEST(SplitEspPath, RefusesUnsafePathsAndNamesThem) {
  struct Refusal {
    std::string path;
    std::string message;
  };
  const std::vector<Refusal> refusals = {
      {"", "ESP path \"\": empty"},
      {"/EFI/xen/a.efi", "ESP path \"/EFI/xen/a.efi\": must be relative to the ESP root"},
      {"EFI//a.efi",
       "ESP path \"EFI//a.efi\": empty component (leading, trailing or doubled \"/\")"},
      {"EFI/xen/", "ESP path \"EFI/xen/\": empty component (leading, trailing or doubled \"/\")"},
      {"EFI/./a.efi", "ESP path \"EFI/./a.efi\": component \".\" not allowed"},
      {"../etc/passwd", "ESP path \"../etc/passwd\": component \"..\" not allowed"},
      {"EFI/xen/..", "ESP path \"EFI/xen/..\": component \"..\" not allowed"},
      {"EFI/xen/a b.efi",
       "ESP path \"EFI/xen/a b.efi\": character \" \" not allowed (only A-Z a-z 0-9 + _ . -)"},
      {"loader/entries/x\nefi /evil.conf",
       "ESP path \"loader/entries/x\\x0aefi /evil.conf\": character \"\\x0a\" not allowed (only "
       "A-Z a-z 0-9 + _ . -)"},
      {"EFI/xen/\xc3\xa9.efi",
       "ESP path \"EFI/xen/\\xc3\\xa9.efi\": character \"\\xc3\" not allowed (only A-Z a-z 0-9 + _ "
       ". -)"},
      {"EFI\\xen",
       "ESP path \"EFI\\x5cxen\": character \"\\x5c\" not allowed (only A-Z a-z 0-9 + _ . -)"},
      {"EFI/" + std::string(256, 'a'),
       "ESP path \"EFI/" + std::string(256, 'a') + "\": component longer than 255 bytes"},
  };
  for (const Refusal& refusal : refusals) {
    EXPECT_EQ(error_from([&] { xbb::split_esp_path(refusal.path); }), refusal.message);
  }
}

class EspTest : public ::testing::Test {
 protected:
  static fs::path made(const fs::path& folder) {
    fs::create_directories(folder);
    return folder;
  }

  void SetUp() override { ::umask(022); }

  TempDir dir;
  fs::path root = made(dir.path() / "esp");
  fs::path outside = made(dir.path() / "outside");
  Esp esp{root};
};

TEST(Esp, RefusesAMissingRoot) {
  TempDir dir;
  const fs::path missing = dir.path() / "no-esp";
  EXPECT_EQ(error_from([&] { Esp esp(missing); }),
            missing.string() + ": cannot open the ESP: No such file or directory");
  try {
    Esp esp(missing);
    FAIL() << "opened a missing ESP";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), xbb::ErrorKind::esp_missing);
  }
}

TEST_F(EspTest, WriteAtomicCreatesFoldersAndFile) {
  esp.write_atomic("EFI/xen/xen-generation-1.efi", "image bytes");

  EXPECT_EQ(read_file(root / "EFI/xen/xen-generation-1.efi"), "image bytes");
  struct stat st = lstat_of(root / "EFI/xen/xen-generation-1.efi");
  EXPECT_TRUE(S_ISREG(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0644u);
  EXPECT_EQ(names_in(root / "EFI/xen"), std::vector<std::string>{"xen-generation-1.efi"});
}

TEST_F(EspTest, WriteAtomicReplacesByRenameNotInPlace) {
  write_file(root / "loader/loader.conf", "old text\n");
  const ino_t old_inode = lstat_of(root / "loader/loader.conf").st_ino;
  std::ifstream still_open(root / "loader/loader.conf", std::ios::binary);

  esp.write_atomic("loader/loader.conf", "new text\n");

  EXPECT_EQ(read_file(root / "loader/loader.conf"), "new text\n");
  EXPECT_NE(lstat_of(root / "loader/loader.conf").st_ino, old_inode);
  const std::string seen_by_earlier_reader(std::istreambuf_iterator<char>(still_open), {});
  EXPECT_EQ(seen_by_earlier_reader, "old text\n");
  EXPECT_EQ(names_in(root / "loader"), std::vector<std::string>{"loader.conf"});
}

TEST_F(EspTest, WriteAtomicWritesLargeAndEmptyFilesWhole) {
  std::string large(3 * 1024 * 1024 + 17, '\0');
  for (std::size_t i = 0; i < large.size(); ++i) large[i] = static_cast<char>(i * 7 + i / 4096);
  esp.write_atomic("EFI/xen/large.efi", large);
  esp.write_atomic("EFI/xen/empty.cfg", "");

  EXPECT_EQ(read_file(root / "EFI/xen/large.efi"), large);
  EXPECT_EQ(fs::file_size(root / "EFI/xen/empty.cfg"), 0u);
}

std::span<const std::uint8_t> span_of(std::string_view bytes) {
  return {reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size()};
}

// Collects what EspFile::read_back gives, and in how many pieces.
class Collect : public xbb::ByteSink {
 public:
  void write(std::span<const std::uint8_t> piece) override {
    bytes.append(reinterpret_cast<const char*>(piece.data()), piece.size());
    ++pieces;
  }
  std::string bytes;
  int pieces = 0;
};

TEST_F(EspTest, StreamedWriteAppendsRewritesAndReadsBackWhatTheFileHolds) {
  write_file(root / "EFI/xen/a.efi", "old image\n");
  const ino_t old_inode = lstat_of(root / "EFI/xen/a.efi").st_ino;
  // Over six chunks of 256 KiB, so that reading back takes seven.
  std::string body(1536 * 1024 + 3, '\0');
  for (std::size_t i = 0; i < body.size(); ++i) body[i] = static_cast<char>(i * 13 + i / 977);
  Collect seen_before_rename;

  const xbb::FileStamp stamp = esp.write_atomic("EFI/xen/a.efi", [&](xbb::EspFile& file) {
    file.write(span_of("HEAD"));
    file.write(span_of(body));
    EXPECT_EQ(file.size(), 4 + body.size());
    file.write_at(0, span_of("he"));
    file.write_at(2 + body.size(), span_of("!!"));
    file.read_back(seen_before_rename);
    EXPECT_EQ(read_file(root / "EFI/xen/a.efi"), "old image\n");
  });

  const std::string expected = "heAD" + body.substr(0, body.size() - 2) + "!!";
  EXPECT_EQ(read_file(root / "EFI/xen/a.efi"), expected);
  EXPECT_EQ(seen_before_rename.bytes, expected);
  EXPECT_EQ(seen_before_rename.pieces, 7);
  const struct stat st = lstat_of(root / "EFI/xen/a.efi");
  EXPECT_NE(st.st_ino, old_inode);
  EXPECT_EQ(st.st_mode & 07777, 0644u);
  EXPECT_EQ(stamp.size, expected.size());
  EXPECT_EQ(stamp.mtime_ns, st.st_mtim.tv_sec * 1000000000ll + st.st_mtim.tv_nsec);
  EXPECT_EQ(names_in(root / "EFI/xen"), std::vector<std::string>{"a.efi"});
}

TEST_F(EspTest, StreamedWriteThatFailsLeavesTheOldFileAndNoTemporary) {
  write_file(root / "EFI/xen/a.efi", "old image\n");
  const std::string shown = (root / "EFI/xen/a.efi").string();

  EXPECT_EQ(error_from([&] {
              esp.write_atomic("EFI/xen/a.efi", [&](xbb::EspFile& file) {
                file.write(span_of("new bytes"));
                throw Error("the producer", "gave up");
              });
            }),
            "the producer: gave up");
  // Rewriting past the bytes written would leave a hole: refused.
  EXPECT_EQ(error_from([&] {
              esp.write_atomic("EFI/xen/a.efi", [&](xbb::EspFile& file) {
                file.write(span_of("new bytes"));
                file.write_at(8, span_of("xy"));
              });
            }),
            shown + ": cannot rewrite 2 bytes at offset 8: only 9 bytes are written");

  EXPECT_EQ(read_file(root / "EFI/xen/a.efi"), "old image\n");
  EXPECT_EQ(names_in(root / "EFI/xen"), std::vector<std::string>{"a.efi"});
}

TEST_F(EspTest, WriteAtomicRefusesInvalidPathsBeforeTouchingTheDisk) {
  EXPECT_EQ(error_from([&] { esp.write_atomic("../escape", "x"); }),
            "ESP path \"../escape\": component \"..\" not allowed");
  EXPECT_EQ(error_from([&] { esp.write_atomic("EFI/xen/a b.efi", "x"); }),
            "ESP path \"EFI/xen/a b.efi\": character \" \" not allowed (only A-Z a-z 0-9 + _ . -)");
  EXPECT_FALSE(fs::exists(dir.path() / "escape"));
  EXPECT_TRUE(fs::is_empty(root));
}

TEST_F(EspTest, PlantedSymlinkAtFinalNameIsReplacedNotWrittenThrough) {
  write_file(outside / "secret", "must stay\n");
  fs::create_directories(root / "loader/entries");
  fs::create_symlink(outside / "secret", root / "loader/entries/xen-generation-1.conf");

  esp.write_atomic("loader/entries/xen-generation-1.conf", "title Xen\n");

  EXPECT_EQ(read_file(outside / "secret"), "must stay\n");
  EXPECT_TRUE(S_ISREG(lstat_of(root / "loader/entries/xen-generation-1.conf").st_mode));
  EXPECT_EQ(read_file(root / "loader/entries/xen-generation-1.conf"), "title Xen\n");
}

TEST_F(EspTest, SymlinkedFolderIsRefusedEverywhere) {
  fs::create_directories(outside / "efi/xen");
  write_file(outside / "efi/xen/a.efi", "outside\n");
  fs::create_directory_symlink(outside / "efi", root / "EFI");
  const std::string refusal =
      (root / "EFI").string() + ": is a symlink; symlinks on the ESP are not followed";

  EXPECT_EQ(error_from([&] { esp.write_atomic("EFI/xen/a.efi", "x"); }), refusal);
  EXPECT_EQ(error_from([&] { esp.read("EFI/xen/a.efi", kLimit); }), refusal);
  EXPECT_EQ(error_from([&] { esp.list("EFI/xen"); }), refusal);
  EXPECT_EQ(error_from([&] { esp.remove("EFI/xen/a.efi"); }), refusal);
  EXPECT_EQ(error_from([&] { esp.type("EFI/xen/a.efi"); }), refusal);
  EXPECT_EQ(names_in(outside / "efi/xen"), std::vector<std::string>{"a.efi"});
  EXPECT_EQ(read_file(outside / "efi/xen/a.efi"), "outside\n");
}

TEST_F(EspTest, ReadGivesContentsOrNothing) {
  write_file(root / "loader/loader.conf", "timeout 3\n");
  EXPECT_EQ(esp.read("loader/loader.conf", kLimit), std::optional<std::string>("timeout 3\n"));
  EXPECT_EQ(esp.read("loader/missing.conf", kLimit), std::nullopt);
  EXPECT_EQ(esp.read("missing-folder/loader.conf", kLimit), std::nullopt);
}

TEST_F(EspTest, ReadRefusesSymlinksAndFolders) {
  write_file(outside / "secret", "secret\n");
  fs::create_directories(root / "loader/entries");
  fs::create_symlink(outside / "secret", root / "loader/loader.conf");

  EXPECT_EQ(error_from([&] { esp.read("loader/loader.conf", kLimit); }),
            (root / "loader/loader.conf").string() +
                ": is a symlink; symlinks on the ESP are not followed");
  EXPECT_EQ(error_from([&] { esp.read("loader/entries", kLimit); }),
            (root / "loader/entries").string() + ": is a folder, not a regular file");
}

TEST_F(EspTest, ReadRefusesFilesLargerThanTheLimitAndFifos) {
  write_file(root / "loader/loader.conf", std::string(101, 'x'));
  EXPECT_EQ(error_from([&] { esp.read("loader/loader.conf", 100); }),
            (root / "loader/loader.conf").string() +
                ": 101 bytes, more than the 100 a file there may have");
  EXPECT_EQ(esp.read("loader/loader.conf", 101), std::optional<std::string>(std::string(101, 'x')));
  ASSERT_EQ(::mkfifo((root / "loader/fifo.conf").c_str(), 0644), 0);
  EXPECT_EQ(error_from([&] { esp.read("loader/fifo.conf", kLimit); }),
            (root / "loader/fifo.conf").string() + ": is a FIFO, not a regular file");
}

TEST_F(EspTest, ListAllGivesEveryNameWithItsType) {
  write_file(root / "loader/entries/b.conf", "b");
  fs::create_directories(root / "loader/entries/a-folder.conf");
  fs::create_symlink(outside, root / "loader/entries/c.conf");
  ASSERT_EQ(::mkfifo((root / "loader/entries/d.conf").c_str(), 0644), 0);
  std::vector<std::pair<std::string, xbb::EspFileType>> types;
  for (const xbb::EspItem& item : esp.list_all("loader/entries"))
    types.emplace_back(item.name, item.type);
  const std::vector<std::pair<std::string, xbb::EspFileType>> expected = {
      {"a-folder.conf", xbb::EspFileType::folder},
      {"b.conf", xbb::EspFileType::regular},
      {"c.conf", xbb::EspFileType::symlink},
      {"d.conf", xbb::EspFileType::other},
  };
  EXPECT_EQ(types, expected);
  EXPECT_EQ(esp.list_all("loader/entries")[1].stamp.size, 1u);
  EXPECT_TRUE(esp.list_all("missing").empty());
}

TEST_F(EspTest, ListGivesRegularFilesAndSymlinksSorted) {
  write_file(root / "EFI/xen/b.efi", "b");
  write_file(root / "EFI/xen/a.efi", "a");
  fs::create_symlink(outside, root / "EFI/xen/c.efi");
  fs::create_directories(root / "EFI/xen/d.efi");

  EXPECT_EQ(esp.list("EFI/xen"), (std::vector<std::string>{"a.efi", "b.efi", "c.efi"}));
  EXPECT_EQ(esp.list("EFI/nixos"), std::vector<std::string>{});
}

TEST_F(EspTest, TypeTellsWhatIsThereWithoutFollowing) {
  write_file(root / "EFI/xen/a.efi", "a");
  fs::create_symlink(outside, root / "EFI/xen/link.efi");

  EXPECT_EQ(esp.type("EFI/xen/a.efi"), EspFileType::regular);
  EXPECT_EQ(esp.type("EFI/xen/link.efi"), EspFileType::symlink);
  EXPECT_EQ(esp.type("EFI/xen"), EspFileType::folder);
  EXPECT_EQ(esp.type("EFI/xen/missing.efi"), EspFileType::absent);
  EXPECT_EQ(esp.type("missing/missing.efi"), EspFileType::absent);
}

TEST_F(EspTest, RemoveDeletesFilesAndSymlinksAndIgnoresMissingOnes) {
  write_file(root / "EFI/xen/a.efi", "a");
  write_file(outside / "target", "target\n");
  fs::create_symlink(outside / "target", root / "EFI/xen/link.efi");

  esp.remove("EFI/xen/a.efi");
  esp.remove("EFI/xen/link.efi");
  esp.remove("EFI/xen/missing.efi");
  esp.remove("missing/missing.efi");

  EXPECT_TRUE(fs::is_empty(root / "EFI/xen"));
  EXPECT_EQ(read_file(outside / "target"), "target\n");
}

TEST(EspOnTmpfs, FreeBytesFollowsWhatIsWritten) {
  Tmpfs tmpfs("size=1m");
  Esp esp(tmpfs.path());
  EXPECT_EQ(esp.space().allocation_unit, static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE)));
  const std::optional<std::uint64_t> before = esp.space().free_bytes;
  ASSERT_TRUE(before.has_value());
  EXPECT_GT(*before, 0u);
  EXPECT_LE(*before, 1024u * 1024u);

  esp.write_atomic("EFI/xen/a.efi", std::string(200 * 1024, 'x'));

  const std::optional<std::uint64_t> after = esp.space().free_bytes;
  ASSERT_TRUE(after.has_value());
  EXPECT_LE(*after, *before - 200 * 1024);
}

struct statvfs fake_statvfs(unsigned long frsize, unsigned long bsize, fsblkcnt_t blocks,
                            fsblkcnt_t available) {
  struct statvfs stats {};
  stats.f_frsize = frsize;
  stats.f_bsize = bsize;
  stats.f_blocks = blocks;
  stats.f_bfree = available;
  stats.f_bavail = available;
  return stats;
}

TEST(EspSpace, FreeBytesCountInFragmentSizeUnits) {
  const xbb::EspSpace space = xbb::space_from_statvfs(fake_statvfs(512, 4096, 1000, 10));
  EXPECT_EQ(space.free_bytes, std::optional<std::uint64_t>(5120));
  EXPECT_EQ(space.allocation_unit, 512u);
}

TEST(EspSpace, FullFileSystemHasZeroFreeBytesNotUnknown) {
  const xbb::EspSpace space = xbb::space_from_statvfs(fake_statvfs(4096, 4096, 1000, 0));
  EXPECT_EQ(space.free_bytes, std::optional<std::uint64_t>(0));
}

TEST(EspSpace, ZeroTotalBlocksMeansUnknownFreeSpace) {
  // What fusefat reports for a FAT32 image: sizes in 1 KiB units, no counts.
  const xbb::EspSpace space = xbb::space_from_statvfs(fake_statvfs(1024, 1024, 0, 0));
  EXPECT_EQ(space.free_bytes, std::nullopt);
  EXPECT_EQ(space.allocation_unit, 1024u);
}

TEST(EspSpace, MissingFragmentSizeFallsBackToBlockSizeThenToAGuess) {
  const xbb::EspSpace block_size_only = xbb::space_from_statvfs(fake_statvfs(0, 2048, 100, 3));
  EXPECT_EQ(block_size_only.allocation_unit, 2048u);
  EXPECT_EQ(block_size_only.free_bytes, std::optional<std::uint64_t>(6144));

  const xbb::EspSpace no_size = xbb::space_from_statvfs(fake_statvfs(0, 0, 0, 0));
  EXPECT_EQ(no_size.allocation_unit, 4096u);
  EXPECT_EQ(no_size.free_bytes, std::nullopt);
}

TEST(EspOnTmpfs, WriteOnFullFileSystemKeepsOldFileAndRemovesTemporary) {
  Tmpfs tmpfs("size=256k");
  write_file(tmpfs.path() / "loader/loader.conf", "old\n");
  Esp esp(tmpfs.path());

  EXPECT_EQ(
      error_from([&] { esp.write_atomic("loader/loader.conf", std::string(512 * 1024, 'x')); }),
      (tmpfs.path() / "loader/loader.conf").string() + ": cannot write: No space left on device");

  EXPECT_EQ(read_file(tmpfs.path() / "loader/loader.conf"), "old\n");
  EXPECT_EQ(temporaries_under(tmpfs.path()), std::vector<std::string>{});
}

TEST_F(EspTest, LockCreatesNothingOnTheEspAndTakingAFreeLockSaysNothing) {
  std::vector<std::string> notices;
  EspLock lock(esp, [&](const std::string& text) { notices.push_back(text); });
  EXPECT_TRUE(fs::is_empty(root));
  EXPECT_EQ(notices, std::vector<std::string>{});
}

// A /proc file, read to its end (its size says nothing).
std::string read_proc_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) ADD_FAILURE() << "cannot open " << path;
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// This process's command line as /proc shows it, arguments joined by spaces
// (at most 200 bytes, then "...").
std::string own_command_line() {
  std::string command = read_proc_file("/proc/self/cmdline");
  while (!command.empty() && command.back() == '\0') command.pop_back();
  std::replace(command.begin(), command.end(), '\0', ' ');
  return command.size() > 200 ? command.substr(0, 200) + "..." : command;
}

TEST_F(EspTest, SecondLockInAnotherProcessSaysWhoItWaitsForThenGivesUpWithAClearMessage) {
  EspLock held(esp);
  const ChildResult child = in_child([&] {
    std::string report;
    try {
      Esp other(root);
      EspLock second(
          other, [&](const std::string& text) { report += "notice: " + text + "\n"; }, 300ms);
    } catch (const Error& e) {
      report += std::string("error: ") + e.what() + "\n";
    }
    return report;
  });
  EXPECT_EQ(child.exit_code, 0) << child.said;
  const std::string& report = child.said;
  const std::string holder =
      "process " + std::to_string(::getpid()) + " (" + own_command_line() + ")";
  EXPECT_EQ(report, "notice: waiting for the lock on " + root.string() + " held by " + holder +
                        "\n" + "error: " + root.string() +
                        ": another xen-boot-builder run holds the lock; gave up after 300 ms (" +
                        holder + ")\n");
}

TEST(FlockHolder, FindsTheFlockHolderOfTheFileAndIgnoresWaitersAndOtherLocks) {
  const std::string proc_locks =
      "1: POSIX  ADVISORY  WRITE 500 08:01:1234 0 EOF\n"
      "2: FLOCK  ADVISORY  WRITE 11902 00:28:1 0 EOF\n"
      "2: -> FLOCK  ADVISORY  WRITE 11950 00:28:1 0 EOF\n"
      "3: -> FLOCK  ADVISORY  WRITE 11951 00:28:5 0 EOF\n"
      "4: FLOCK  ADVISORY  READ 777 103:10a:99 0 EOF\n"
      "5: FLOCK  ADVISORY  WRITE 0 00:28:7 0 EOF\n";

  EXPECT_EQ(xbb::flock_holder(proc_locks, makedev(0, 0x28), 1), std::optional<pid_t>(11902));
  EXPECT_EQ(xbb::flock_holder(proc_locks, makedev(0x103, 0x10a), 99), std::optional<pid_t>(777));
  EXPECT_EQ(xbb::flock_holder(proc_locks, makedev(8, 1), 1234), std::nullopt);  // a POSIX lock
  EXPECT_EQ(xbb::flock_holder(proc_locks, makedev(0, 0x28), 5), std::nullopt);  // only a waiter
  EXPECT_EQ(xbb::flock_holder(proc_locks, makedev(0, 0x28), 7), std::nullopt);  // pid not visible
  EXPECT_EQ(xbb::flock_holder(proc_locks, makedev(0, 0x29), 1), std::nullopt);  // another device
  EXPECT_EQ(xbb::flock_holder("", makedev(0, 0x28), 1), std::nullopt);
}

TEST_F(EspTest, HolderOfAnEspLockIsFoundInProcLocks) {
  EspLock held(esp);
  struct stat st = lstat_of(root);

  EXPECT_EQ(xbb::flock_holder(read_proc_file("/proc/locks"), st.st_dev, st.st_ino),
            std::optional<pid_t>(::getpid()));
}

TEST_F(EspTest, SecondLockWaitsForTheFirstAndThenProceeds) {
  auto held = std::make_unique<EspLock>(esp);
  int pipe_fds[2];
  ASSERT_EQ(::pipe(pipe_fds), 0);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::close(pipe_fds[0]);
    int code = 1;
    try {
      Esp other(root);
      if (::write(pipe_fds[1], "w", 1) == 1) {
        EspLock second(other, {}, 60s);
        code = ::write(pipe_fds[1], "a", 1) == 1 ? 0 : 2;
      }
    } catch (...) {
      code = 3;
    }
    ::_exit(code);
  }
  ::close(pipe_fds[1]);
  char byte = 0;
  ASSERT_EQ(::read(pipe_fds[0], &byte, 1), 1);
  EXPECT_EQ(byte, 'w');
  // Give the child time to start waiting; whatever the timing, it must not
  // hold the lock while this process does.
  std::this_thread::sleep_for(300ms);
  pollfd readable{pipe_fds[0], POLLIN, 0};
  EXPECT_EQ(::poll(&readable, 1, 0), 0) << "the second lock was taken while the first was held";

  held.reset();

  EXPECT_EQ(read_to_end(pipe_fds[0]), "a");
  ::close(pipe_fds[0]);
  EXPECT_EQ(exit_code_of(child), 0);
}

// verify reads under a shared lock: several readers at once, never while a
// build holds it, and a build waits for them.
TEST_F(EspTest, SharedLocksCoexistAndExcludeABuild) {
  using Mode = EspLock::Mode;
  auto kind_of = [&](Mode mode) {
    try {
      EspLock lock(esp, {}, 100ms, mode);
    } catch (const Error& e) {
      return e.kind();
    }
    return xbb::ErrorKind::failed;  // taken: no error
  };
  {
    EspLock reader(esp, {}, 100ms, Mode::shared);
    EspLock other_reader(esp, {}, 100ms, Mode::shared);
    EXPECT_EQ(kind_of(Mode::exclusive), xbb::ErrorKind::lock_timeout);
  }
  {
    EspLock builder(esp);
    EXPECT_EQ(kind_of(Mode::shared), xbb::ErrorKind::lock_timeout);
  }
  EXPECT_EQ(kind_of(Mode::exclusive), xbb::ErrorKind::failed) << "free again";
}

std::string marked(const std::string& text) {
  return std::string(xbb::layout::kMarker) + "\n" + text;
}

TEST_F(EspTest, StateListsWhatThePlannerNeeds) {
  write_file(root / "loader/entries/xen-generation-1.conf", marked("one\n"));
  write_file(root / "loader/entries/xen-generation-2+3.conf",
             "title script\nefi /EFI/nixos/xen-generation-2.efi\n");
  write_file(root / "loader/entries/xen-custom.conf", "title by hand\nefi /EFI/xen/my-xen.efi\n");
  write_file(root / "loader/entries/nixos-generation-1.conf", "nixos\n");
  write_file(root / "loader/entries/xen-notes.txt", "notes\n");
  write_file(outside / "secret", "secret\n");
  fs::create_symlink(outside / "secret", root / "loader/entries/xen-planted.conf");
  fs::create_directories(root / "loader/entries/xen-folder.conf");
  write_file(root / "EFI/xen/xen-generation-1.efi", "not an image");
  write_file(root / "EFI/xen/xen-4.17-0123abcd.cfg", marked("cfg\n"));
  write_file(root / "EFI/xen/my.cfg", "by hand\n");
  write_file(root / "EFI/xen/xen-generation-1.efi.xbb-tmp-0123456789abcdef", "half");
  write_file(root / "EFI/xen/readme.txt", "readme");
  write_file(root / "EFI/nixos/xen-generation-1.efi", "legacy");
  write_file(root / "EFI/nixos/kernel-bzImage.efi", "kernel");
  write_file(root / "loader/loader.conf", "default nixos-generation-1.conf\n");

  xbb::Generation generation;
  generation.entry.kernel = "/EFI/nixos/kernel-bzImage.efi";
  generation.entry.initrds = {"/EFI/nixos/missing-initrd.efi", "/EFI/nixos/bad name.efi"};
  xbb::EspState state = xbb::read_esp_state(esp, {generation}, &esp, std::nullopt);

  auto entry = [&](const std::string& name) {
    return state.xen_entries.at("loader/entries/" + name);
  };
  EXPECT_EQ(state.xen_entries.size(), 4u);
  EXPECT_EQ(entry("xen-generation-1.conf").text, marked("one\n"));
  EXPECT_TRUE(entry("xen-generation-1.conf").ours);
  EXPECT_TRUE(entry("xen-generation-2+3.conf").ours) << "written by the shell script";
  EXPECT_FALSE(entry("xen-custom.conf").ours);
  EXPECT_TRUE(entry("xen-planted.conf").ours) << "a symlink";
  EXPECT_EQ(entry("xen-planted.conf").text, "");
  EXPECT_EQ(state.xen_images.size(), 3u);
  EXPECT_FALSE(state.xen_images.at("EFI/xen/xen-generation-1.efi").ours) << "no marked .config";
  EXPECT_TRUE(state.xen_images.at("EFI/xen/xen-4.17-0123abcd.cfg").ours);
  EXPECT_FALSE(state.xen_images.at("EFI/xen/my.cfg").ours);
  EXPECT_EQ(state.legacy_images, std::vector<std::string>{"EFI/nixos/xen-generation-1.efi"});
  EXPECT_EQ(state.boot_files, std::set<std::string>{"EFI/nixos/kernel-bzImage.efi"});
  EXPECT_EQ(state.loader_conf, std::optional<std::string>("default nixos-generation-1.conf\n"));
  EXPECT_EQ(state.loader_conf_problem, "");
  EXPECT_EQ(read_file(outside / "secret"), "secret\n");
}

TEST_F(EspTest, StateReportsAnUnusableLoaderConfAndSkipsItWhenAskedTo) {
  fs::create_directories(root / "loader/loader.conf");
  xbb::EspState state = xbb::read_esp_state(esp, {}, &esp, std::nullopt);
  EXPECT_EQ(state.loader_conf, std::nullopt);
  EXPECT_EQ(state.loader_conf_problem,
            (root / "loader/loader.conf").string() + ": is a folder, not a regular file");

  xbb::EspState without = xbb::read_esp_state(esp, {}, nullptr, std::nullopt);
  EXPECT_EQ(without.loader_conf, std::nullopt);
  EXPECT_EQ(without.loader_conf_problem, "");
}

// An entry's kernel or initrd path names a file on the ESP only when it
// starts with '/': "XEFI/nixos/k.efi" is not "EFI/nixos/k.efi".
TEST_F(EspTest, StateCountsOnlyAbsoluteKernelAndInitrdPaths) {
  write_file(root / "EFI/nixos/kernel.efi", "kernel");
  write_file(root / "EFI/nixos/initrd.efi", "initrd");
  xbb::Generation generation;
  generation.entry.kernel = "XEFI/nixos/kernel.efi";
  generation.entry.initrds = {"EEFI/nixos/initrd.efi", "/EFI/nixos/initrd.efi"};
  xbb::EspState state = xbb::read_esp_state(esp, {generation}, nullptr, std::nullopt);
  EXPECT_EQ(state.boot_files, std::set<std::string>{"EFI/nixos/initrd.efi"});
}

TEST_F(EspTest, StateOfAnEmptyEspIsEmpty) {
  xbb::EspState state = xbb::read_esp_state(esp, {}, &esp, std::nullopt);
  EXPECT_TRUE(state.xen_entries.empty());
  EXPECT_TRUE(state.xen_images.empty());
  EXPECT_TRUE(state.legacy_images.empty());
  EXPECT_EQ(state.loader_conf, std::nullopt);
}

}  // namespace
