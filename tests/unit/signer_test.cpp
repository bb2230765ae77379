// Signing with sbsigntool, and taking a signature off (pe::without_signature),
// checked with the real tools: sbsign, sbverify and openssl for the keys.
#include "xbb/signer.hpp"

#include <gtest/gtest.h>

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

class SignerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    make_key(dir.path(), "db");
    make_key(dir.path(), "other");
    const auto padded = xbb::pe::padded_for_signing(bytes_of_file(xen_efi()));
    write_file(image, std::string(padded.begin(), padded.end()));
  }

  TempDir dir;
  fs::path image = dir.path() / "xen.efi";
  fs::path signed_image = dir.path() / "signed.efi";
};

TEST_F(SignerTest, SignsAndChecksWithSbsigntool) {
  xbb::SbsignSigner signer(dir.path() / "db.key", dir.path() / "db.pem");
  signer.sign(image.string(), signed_image.string());
  signer.check(signed_image.string());
  EXPECT_TRUE(xbb::pe::parse(bytes_of_file(signed_image)).is_signed());
  EXPECT_EQ(signer.identity().size(), 64u);

  xbb::SbsignSigner other(std::nullopt, dir.path() / "other.pem");
  EXPECT_NE(other.identity(), signer.identity());
  EXPECT_THROW(other.check(signed_image.string()), xbb::Error);
  EXPECT_THROW(other.check(image.string()), xbb::Error) << "an unsigned image";
}

// What is signed comes back when the signature is taken off: a run compares
// what it would sign with what is on the ESP, not the signed bytes.
TEST_F(SignerTest, TakingTheSignatureOffGivesBackWhatWasSigned) {
  xbb::SbsignSigner signer(dir.path() / "db.key", dir.path() / "db.pem");
  signer.sign(image.string(), signed_image.string());
  EXPECT_EQ(xbb::pe::without_signature(bytes_of_file(signed_image)), bytes_of_file(image));
  EXPECT_EQ(xbb::pe::without_signature(bytes_of_file(image)), bytes_of_file(image));
  const auto padded = bytes_of_file(image);
  EXPECT_EQ(padded.size() % 8, 0u);
  const xbb::pe::Image parsed = xbb::pe::parse(padded);
  EXPECT_EQ(parsed.checksum, xbb::pe::compute_checksum(padded, parsed));
}

TEST_F(SignerTest, SaysWhySigningFailed) {
  EXPECT_THROW(xbb::SbsignSigner(dir.path() / "missing.key", dir.path() / "db.pem"), xbb::Error);
  xbb::SbsignSigner mismatched(dir.path() / "other.key", dir.path() / "db.pem");
  try {
    mismatched.sign(image.string(), signed_image.string());
    ADD_FAILURE() << "signed with a key that does not match the certificate";
  } catch (const xbb::Error& e) {
    EXPECT_NE(std::string(e.what()).find("failed (sb"), std::string::npos) << e.what();
  }
  xbb::SbsignSigner check_only(std::nullopt, dir.path() / "db.pem");
  EXPECT_THROW(check_only.sign(image.string(), signed_image.string()), xbb::Error);
}

}  // namespace
