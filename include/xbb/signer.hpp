#pragma once

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

class Signer {
 public:
  virtual ~Signer() = default;
  // What identifies the signatures made: the SHA-256 of the certificate.
  // Part of each signed image's recipe, so that a new key re-signs them.
  virtual const std::string& identity() const = 0;
  // Signs the PE image at `input` into `output` (paths the signer opens,
  // such as /proc/self/fd/N of an open temporary). Throws Error with what
  // the signer said.
  virtual void sign(const std::string& input, const std::string& output) const = 0;
  // Throws Error unless the image at `path` carries a signature the
  // certificate verifies.
  virtual void check(const std::string& path) const = 0;
};

// sbsign --key KEY --cert CERT --output OUTPUT INPUT, then sbverify --cert
// CERT. Without a key it only checks (verify --sign-cert).
class SbsignSigner : public Signer {
 public:
  // Throws Error when the key or certificate is not a readable regular file.
  SbsignSigner(std::optional<std::filesystem::path> key, std::filesystem::path cert);

  const std::string& identity() const override { return identity_; }
  void sign(const std::string& input, const std::string& output) const override;
  void check(const std::string& path) const override;

 private:
  std::optional<std::filesystem::path> key_;
  std::filesystem::path cert_;
  std::string identity_;
};

}  // namespace xbb
