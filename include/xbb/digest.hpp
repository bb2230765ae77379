#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "xbb/byte_sink.hpp"

struct SHA256state_st;  // OpenSSL's SHA256_CTX
struct XXH3_state_s;    // xxHash's XXH3_state_t

namespace xbb {

// SHA-256, with OpenSSL's libcrypto: digests that are shown or name a file
// (a shared image's name holds its content's digest) and of recipes (what an
// image is made of).
class Sha256 {
 public:
  Sha256();

  Sha256& update(std::string_view bytes);
  // The digest as 64 lowercase hex digits; the object is then spent.
  std::string hex();

 private:
  struct Free {
    void operator()(SHA256state_st* context) const;
  };
  // Owned from the start: freed also when the constructor throws.
  std::unique_ptr<SHA256state_st, Free> context_;
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

// XXH3-128, with xxHash: change detection, not proof (anyone who can write
// the ESP can write what the hash is compared with), about 20 times faster
// than SHA-256. The record's hash of images (see RecordHash in record.hpp).
class Xxh3 {
 public:
  Xxh3();

  Xxh3& update(std::span<const std::uint8_t> bytes);
  // The hash in xxHash's canonical (big-endian) form, as 32 lowercase hex
  // digits; the object is then spent.
  std::string hex();

 private:
  struct Free {
    void operator()(XXH3_state_s* state) const;
  };
  std::unique_ptr<XXH3_state_s, Free> state_;
};

}  // namespace xbb
