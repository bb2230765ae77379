#include "xbb/digest.hpp"

#include <openssl/evp.h>
#include <xxhash.h>

#include "hex.hpp"
#include "xbb/error.hpp"

namespace xbb {

void Sha256::Free::operator()(EVP_MD_CTX* context) const { EVP_MD_CTX_free(context); }

Sha256::Sha256() : context_(EVP_MD_CTX_new()) {
  if (!context_ || EVP_DigestInit_ex(context_.get(), EVP_sha256(), nullptr) != 1) {
    throw Error("SHA-256: cannot initialise libcrypto's digest");
  }
}

Sha256& Sha256::update(std::string_view bytes) {
  if (EVP_DigestUpdate(context_.get(), bytes.data(), bytes.size()) != 1) {
    throw Error("SHA-256: digest update failed");
  }
  return *this;
}

std::string Sha256::hex() {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  if (EVP_DigestFinal_ex(context_.get(), digest, &size) != 1) {
    throw Error("SHA-256: digest final failed");
  }
  return hex_bytes(digest, size);
}

std::string sha256_hex(std::string_view bytes) { return Sha256().update(bytes).hex(); }

void Xxh3::Free::operator()(XXH3_state_s* state) const { XXH3_freeState(state); }

Xxh3::Xxh3() : state_(XXH3_createState()) {
  if (!state_ || XXH3_128bits_reset(state_.get()) != XXH_OK) {
    throw Error("XXH3: cannot initialise xxHash's state");
  }
}

Xxh3& Xxh3::update(std::span<const std::uint8_t> bytes) {
  if (XXH3_128bits_update(state_.get(), bytes.data(), bytes.size()) != XXH_OK) {
    throw Error("XXH3: hash update failed");
  }
  return *this;
}

std::string Xxh3::hex() {
  XXH128_canonical_t canonical;
  XXH128_canonicalFromHash(&canonical, XXH3_128bits_digest(state_.get()));
  return hex_bytes(canonical.digest, sizeof canonical.digest);
}

}  // namespace xbb
