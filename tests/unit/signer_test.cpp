// Signing with sbsigntool through open files, checked with the real tools:
// sbsign, sbverify, sbattach, and openssl for the keys.
#include "xbb/signer.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>

#include "esp_fixture.hpp"
#include "xbb/error.hpp"
#include "xbb/pe.hpp"

namespace {

using namespace esp_test;

// A throwaway key and self-signed certificate, made with openssl.
void make_key(const fs::path& folder, const std::string& name) {
  const std::string command = "openssl req -new -x509 -newkey rsa:2048 -nodes -subj /CN=" + name +
                              " -days 3650 -keyout " + (folder / (name + ".key")).string() +
                              " -out " + (folder / (name + ".pem")).string() + " 2>/dev/null";
  ASSERT_EQ(std::system(command.c_str()), 0) << command;
}

std::vector<std::uint8_t> bytes_of_file(const fs::path& path) {
  const std::string text = read_file(path);
  return {text.begin(), text.end()};
}

// An open file, closed at the end of the test.
class OpenFile {
 public:
  OpenFile(const fs::path& path, int flags) : fd_(::open(path.c_str(), flags | O_CLOEXEC, 0600)) {
    EXPECT_GE(fd_, 0) << path;
  }
  ~OpenFile() { ::close(fd_); }
  OpenFile(const OpenFile&) = delete;
  OpenFile& operator=(const OpenFile&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

class SignerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    make_key(dir.path(), "db");
    make_key(dir.path(), "other");
    const auto made =
        xbb::pe::add_sections(bytes_of_file(xen_efi()), {{".config", {'a', '\n'}}}, {true, true});
    write_file(image, std::string(made.file.begin(), made.file.end()));
  }

  // Signs `image` into `signed_image` with `signer`, through open files.
  void sign(const xbb::Signer& signer) {
    OpenFile input(image, O_RDONLY);
    OpenFile output(signed_image, O_RDWR | O_CREAT);
    signer.sign(input.get(), output.get());
  }

  void check(const xbb::Signer& signer, const fs::path& path) {
    OpenFile file(path, O_RDONLY);
    signer.check(file.get());
  }

  TempDir dir;
  fs::path image = dir.path() / "xen.efi";
  fs::path signed_image = dir.path() / "signed.efi";
};

TEST_F(SignerTest, SignsAndChecksWithSbsigntool) {
  xbb::SbsignSigner signer(dir.path() / "db.key", dir.path() / "db.pem");
  sign(signer);
  check(signer, signed_image);
  const std::string oracle = "sbverify --cert " + (dir.path() / "db.pem").string() + " " +
                             signed_image.string() + " >/dev/null 2>&1";
  EXPECT_EQ(std::system(oracle.c_str()), 0) << oracle;
  EXPECT_TRUE(xbb::pe::parse(bytes_of_file(signed_image)).is_signed());
  EXPECT_EQ(signer.identity().size(), 64u);

  xbb::SbsignSigner other(std::nullopt, dir.path() / "other.pem");
  EXPECT_NE(other.identity(), signer.identity());
  EXPECT_THROW(check(other, signed_image), xbb::Error);
  EXPECT_THROW(check(other, image), xbb::Error) << "an unsigned image";
}

// The output file is emptied first: what was in it does not trail the
// signed image.
TEST_F(SignerTest, OutputHoldsOnlyTheSignedImage) {
  write_file(signed_image, std::string(8 << 20, 'x'));
  xbb::SbsignSigner signer(dir.path() / "db.key", dir.path() / "db.pem");
  sign(signer);
  const auto signed_bytes = bytes_of_file(signed_image);
  const xbb::pe::Image parsed = xbb::pe::parse(signed_bytes);
  const auto& table = parsed.data_directories[4];  // the certificate table
  EXPECT_EQ(std::uint64_t{table.virtual_address} + table.size, signed_bytes.size());
  EXPECT_EQ(table.virtual_address, fs::file_size(image));
}

// An image made with pad_for_signing is signed as it is: sbattach, which
// takes a signature off, gives back the bytes made. That is why a run
// records the digest of the image it made for the signed file.
TEST_F(SignerTest, WhatIsSignedIsTheImageMade) {
  xbb::SbsignSigner signer(dir.path() / "db.key", dir.path() / "db.pem");
  sign(signer);
  const fs::path taken_off = dir.path() / "taken-off.efi";
  fs::copy_file(signed_image, taken_off);
  const std::string command = "sbattach --remove " + taken_off.string() + " >/dev/null 2>&1";
  ASSERT_EQ(std::system(command.c_str()), 0) << command;
  EXPECT_TRUE(bytes_of_file(taken_off) == bytes_of_file(image));
}

TEST_F(SignerTest, SaysWhySigningFailed) {
  EXPECT_THROW(xbb::SbsignSigner(dir.path() / "missing.key", dir.path() / "db.pem"), xbb::Error);
  xbb::SbsignSigner mismatched(dir.path() / "other.key", dir.path() / "db.pem");
  try {
    sign(mismatched);
    ADD_FAILURE() << "signed with a key that does not match the certificate";
  } catch (const xbb::Error& e) {
    EXPECT_NE(std::string(e.what()).find("failed (sb"), std::string::npos) << e.what();
  }
  xbb::SbsignSigner check_only(std::nullopt, dir.path() / "db.pem");
  EXPECT_THROW(sign(check_only), xbb::Error);
}

}  // namespace
