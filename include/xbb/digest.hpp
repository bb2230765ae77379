#pragma once

#include <string>
#include <string_view>

namespace xbb {

// SHA-256, with OpenSSL's libcrypto: content digests of images (shared
// image names, comparing an image with the one it replaces without keeping
// both) and of recipes (what an image is made of).
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  Sha256& update(std::string_view bytes);
  // The digest as 64 lowercase hex digits; the object is then spent.
  std::string hex();

 private:
  void* context_;
};

// The SHA-256 of `bytes` as 64 lowercase hex digits.
std::string sha256_hex(std::string_view bytes);

}  // namespace xbb
