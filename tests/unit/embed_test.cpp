// What a self-contained image embeds: kernel and initrd checked, and the
// initrd's secrets appended by the bootspec's tool to a private copy.
#include "embed.hpp"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <algorithm>
#include <fstream>

#include "xbb/digest.hpp"

namespace fs = std::filesystem;

namespace xbb {
namespace {

class EmbedTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "xbb-embed-XXXXXX").string();
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    root_ = pattern;
    write("nix/store/k/bzImage", "kernel");
    write("nix/store/i/initrd", "initrd:");
  }
  void TearDown() override { fs::remove_all(root_); }

  fs::path write(const std::string& path, const std::string& text,
                 fs::perms mode = fs::perms::owner_read | fs::perms::owner_write) {
    fs::path file = root_ / path;
    fs::create_directories(file.parent_path());
    std::ofstream(file, std::ios::binary) << text;
    fs::permissions(file, mode);
    return file;
  }

  Generation generation(std::optional<std::string> secrets = std::nullopt) {
    Generation g;
    Bootspec spec;
    spec.xen = XenExtension{};
    spec.initrd_secrets = std::move(secrets);
    g.bootspec = spec;
    g.kernel_file = HostFile{root_ / "nix/store/k/bzImage", {}, {}};
    g.initrd_file = HostFile{root_ / "nix/store/i/initrd", {}, {}};
    return g;
  }

  static std::string read(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  }

  fs::path root_;
};

const fs::perms kExecutable = fs::perms::owner_all;
const std::chrono::milliseconds kLimit{60000};

TEST_F(EmbedTest, StampsTheKernelAndInitrd) {
  std::vector<Generation> gens = {generation()};
  PrivateFolder scratch;
  prepare_embedded_files(gens, root_, scratch, kLimit);
  ASSERT_TRUE(gens[0].bootspec) << gens[0].problem;
  EXPECT_EQ(gens[0].kernel_file.stamp.size, 6u);
  EXPECT_EQ(gens[0].initrd_file->stamp.size, 7u);
  EXPECT_EQ(gens[0].initrd_file->path, root_ / "nix/store/i/initrd");
}

TEST_F(EmbedTest, RefusesAKernelThatIsNotARegularFile) {
  fs::remove(root_ / "nix/store/k/bzImage");
  ASSERT_EQ(::mkfifo((root_ / "nix/store/k/bzImage").c_str(), 0644), 0);
  std::vector<Generation> gens = {generation(), generation()};
  gens[1].kernel_file.path = write("nix/store/k2/bzImage", "other kernel");
  PrivateFolder scratch;
  prepare_embedded_files(gens, root_, scratch, kLimit);
  EXPECT_FALSE(gens[0].bootspec);
  EXPECT_EQ(gens[0].problem,
            (root_ / "nix/store/k/bzImage").string() + ": is a FIFO, not a regular file");
  EXPECT_TRUE(gens[1].bootspec) << "the other generation goes on";
}

// As NixOS does: the tool gets the path of a writable copy of the initrd and
// appends to it; the store initrd is never touched.
TEST_F(EmbedTest, AppendsTheSecretsToAPrivateCopy) {
  write("nix/store/s/bin/append-initrd-secrets", "#!/bin/sh\nprintf 'secret' >> \"$1\"\n",
        kExecutable);
  std::vector<Generation> gens = {generation("/nix/store/s/bin/append-initrd-secrets")};
  fs::path copy;
  {
    PrivateFolder scratch;
    EXPECT_EQ(fs::status(scratch.path()).permissions() & fs::perms::all, fs::perms::owner_all);
    prepare_embedded_files(gens, root_, scratch, kLimit);
    ASSERT_TRUE(gens[0].bootspec) << gens[0].problem;
    copy = gens[0].initrd_file->path;
    EXPECT_EQ(copy.parent_path(), scratch.path());
    EXPECT_EQ(read(copy), "initrd:secret");
    EXPECT_EQ(gens[0].initrd_file->digest, sha256_hex("initrd:secret"));
    EXPECT_EQ(read(root_ / "nix/store/i/initrd"), "initrd:");
  }
  EXPECT_FALSE(fs::exists(copy)) << "the private copy goes with the run";
}

TEST_F(EmbedTest, AFailingSecretsToolCostsOnlyItsGeneration) {
  write("nix/store/s/bin/append-initrd-secrets",
        "#!/bin/sh\necho 'cannot read /etc/secret' >&2\nexit 3\n", kExecutable);
  std::vector<Generation> gens = {generation("/nix/store/s/bin/append-initrd-secrets"),
                                  generation("/nix/store/missing/bin/tool"), generation()};
  PrivateFolder scratch;
  prepare_embedded_files(gens, root_, scratch, kLimit);
  EXPECT_FALSE(gens[0].bootspec);
  EXPECT_EQ(gens[0].problem,
            (root_ / "nix/store/s/bin/append-initrd-secrets").string() +
                ": the initrd secrets tool failed (exit status 3): cannot read /etc/secret");
  EXPECT_FALSE(gens[1].bootspec);
  EXPECT_NE(gens[1].problem.find("missing/bin/tool"), std::string::npos) << gens[1].problem;
  EXPECT_TRUE(gens[2].bootspec);
}

TEST_F(EmbedTest, ASecretsToolThatTimesOutCostsOnlyItsGeneration) {
  write("nix/store/s/bin/append-initrd-secrets", "#!/bin/sh\nsleep 100\n", kExecutable);
  std::vector<Generation> gens = {generation("/nix/store/s/bin/append-initrd-secrets"),
                                  generation()};
  PrivateFolder scratch;
  prepare_embedded_files(gens, root_, scratch, std::chrono::milliseconds(1000));
  EXPECT_FALSE(gens[0].bootspec);
  EXPECT_EQ(gens[0].problem, (root_ / "nix/store/s/bin/append-initrd-secrets").string() +
                                 ": the initrd secrets tool failed (timed out after 1 s)");
  EXPECT_TRUE(gens[1].bootspec);
}

// Only an executable regular file inside the store (under the root) is run:
// a path outside it, a link out of it, a folder or a file without execute
// permission costs its generation and is never started.
TEST_F(EmbedTest, ASecretsToolOutsideTheStoreIsNotRun) {
  const fs::path ran = root_ / "ran";
  const std::string script = "#!/bin/sh\ntouch " + ran.string() + "\n";
  write("etc/secrets-tool", script, kExecutable);
  write("nix/store/s/bin/not-executable", script);
  fs::create_directories(root_ / "nix/store/s/bin/folder");
  fs::create_symlink("/etc/secrets-tool", root_ / "nix/store/s/bin/link-out");
  std::vector<Generation> gens = {
      generation("/etc/secrets-tool"), generation("/nix/store/s/bin/link-out"),
      generation("/nix/store/s/bin/not-executable"), generation("/nix/store/s/bin/folder")};
  PrivateFolder scratch;
  prepare_embedded_files(gens, root_, scratch, kLimit);
  for (const std::string& expected :
       {"/etc/secrets-tool: the initrd secrets tool is outside /nix/store (it leads to " +
            (root_ / "etc/secrets-tool").string() + "); not run",
        "/nix/store/s/bin/link-out: the initrd secrets tool is outside /nix/store (it leads to " +
            (root_ / "etc/secrets-tool").string() + "); not run",
        std::string("/nix/store/s/bin/not-executable: the initrd secrets tool is not an executable "
                    "regular file; not run"),
        std::string("/nix/store/s/bin/folder: the initrd secrets tool is not an executable "
                    "regular file; not run")}) {
    const auto found = std::find_if(gens.begin(), gens.end(),
                                    [&](const Generation& g) { return g.problem == expected; });
    EXPECT_NE(found, gens.end()) << expected;
  }
  for (const auto& g : gens) EXPECT_FALSE(g.bootspec) << g.problem;
  EXPECT_FALSE(fs::exists(ran));
}

// A run killed before it removed its private folder leaves it behind: a
// later one removes it once old, unless a live run holds it locked.
TEST_F(EmbedTest, StalePrivateFoldersAreRemovedButNotLiveOnes) {
  const fs::path tmp = root_ / "tmp";
  fs::create_directories(tmp);
  const char* saved = std::getenv("TMPDIR");
  const std::string saved_value = saved ? saved : "";
  ::setenv("TMPDIR", tmp.c_str(), 1);
  const fs::path stale = tmp / "xen-boot-builder-AbC123";
  fs::create_directories(stale);
  write("tmp/xen-boot-builder-AbC123/initrd-0", "secret");
  const fs::path other = tmp / "not-ours-AbC123";
  fs::create_directories(other);
  const auto old = fs::file_time_type::clock::now() - std::chrono::hours(2);
  fs::last_write_time(stale, old);
  fs::last_write_time(other, old);
  {
    PrivateFolder live;
    fs::last_write_time(live.path(), old);
    EXPECT_FALSE(fs::exists(stale)) << "a stale folder stays";
    PrivateFolder second;
    EXPECT_TRUE(fs::exists(live.path())) << "a live folder was removed";
    EXPECT_TRUE(fs::exists(other));
  }
  if (saved) {
    ::setenv("TMPDIR", saved_value.c_str(), 1);
  } else {
    ::unsetenv("TMPDIR");
  }
}

}  // namespace
}  // namespace xbb
