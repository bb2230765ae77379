#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "xbb/byte_sink.hpp"

struct evp_md_ctx_st;  // OpenSSL's EVP_MD_CTX

namespace xbb {

// SHA-256, with OpenSSL's libcrypto: content digests of images (shared
// image names, comparing an image with the one it replaces without keeping
// both) and of recipes (what an image is made of).
class Sha256 {
 public:
  Sha256();

  Sha256& update(std::string_view bytes);
  // The digest as 64 lowercase hex digits; the object is then spent.
  std::string hex();

 private:
  struct Free {
    void operator()(evp_md_ctx_st* context) const;
  };
  // Owned from the start: freed also when the constructor throws.
  std::unique_ptr<evp_md_ctx_st, Free> context_;
};

// The SHA-256 of the bytes streamed into it, and their count: the digest of
// an image as it is made, without holding it.
class Sha256Sink : public ByteSink {
 public:
  void write(std::span<const std::uint8_t> bytes) override {
    hash_.update({reinterpret_cast<const char*>(bytes.data()), bytes.size()});
    size_ += bytes.size();
  }
  // As Sha256::hex: the sink is then spent.
  std::string hex() { return hash_.hex(); }
  std::uint64_t size() const { return size_; }

 private:
  Sha256 hash_;
  std::uint64_t size_ = 0;
};

// The SHA-256 of `bytes` as 64 lowercase hex digits.
std::string sha256_hex(std::string_view bytes);

}  // namespace xbb
