#pragma once

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>

// Signing images for Secure Boot, behind one interface, so that applying a
// plan does not depend on how. The program signs with Debian's sbsigntool
// (sbsign, checked with sbverify), as Lanzaboote does: a well-kept signer
// whose output firmware and shim accept, started without a shell with fixed
// arguments. The key is only ever read by sbsign, in place; it is never
// copied.
namespace xbb {

// How long a program the tool runs (sbsign, sbverify, the initrd secrets
// tool) may take by default (--helper-timeout).
inline constexpr std::chrono::seconds kDefaultHelperTimeout{60};

class Signer {
 public:
  virtual ~Signer() = default;
  // What identifies the signatures made: the SHA-256 of the certificate.
  // Part of each signed image's recipe, so that a new key re-signs them.
  virtual const std::string& identity() const = 0;
  // Signs the PE image in the open file `input` into the open file
  // `output` (emptied first), then checks what it wrote. An image that does
  // not end on a quadword gains zeros (pe::AddOptions::pad_for_signing makes
  // them part of the image). Throws Error with what the signer said.
  virtual void sign(int input, int output) const = 0;
  // Throws Error unless the image in the open file `image` carries a
  // signature the certificate verifies.
  virtual void check(int image) const = 0;
};

// sbsign --key KEY --cert CERT --output OUTPUT INPUT, then sbverify --cert
// CERT, each given the open files as /proc/self/fd/N: they never open a path
// on the ESP. Without a key it only checks (verify --sign-cert). Each runs
// for at most `limit` (--helper-timeout): one that takes longer is killed and
// the signing fails.
class SbsignSigner : public Signer {
 public:
  // Throws Error when the key or certificate is not a readable regular file.
  SbsignSigner(std::optional<std::filesystem::path> key, std::filesystem::path cert,
               std::chrono::seconds limit = kDefaultHelperTimeout);

  const std::string& identity() const override { return identity_; }
  void sign(int input, int output) const override;
  void check(int image) const override;

 private:
  std::optional<std::filesystem::path> key_;
  std::filesystem::path cert_;
  std::chrono::seconds limit_;
  std::string identity_;
};

}  // namespace xbb
