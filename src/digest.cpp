#include "xbb/digest.hpp"

#include <openssl/evp.h>
#include <xxhash.h>

#include "hex.hpp"
#include "shared_library.hpp"
#include "xbb/error.hpp"

namespace xbb {

namespace {

// libcrypto's digest functions, loaded by the first Sha256: a run that
// hashes nothing never loads OpenSSL. XBB_LIBCRYPTO is its path (CMakeLists.txt).
struct Evp {
  decltype(&::EVP_MD_CTX_new) md_ctx_new;
  decltype(&::EVP_MD_CTX_free) md_ctx_free;
  decltype(&::EVP_sha256) sha256;
  decltype(&::EVP_DigestInit_ex) digest_init;
  decltype(&::EVP_DigestUpdate) digest_update;
  decltype(&::EVP_DigestFinal_ex) digest_final;
};

const Evp& evp() {
  static const Evp functions = [] {
    const SharedLibrary library("libcrypto", XBB_LIBCRYPTO);
    return Evp{XBB_LIBRARY_FUNCTION(library, EVP_MD_CTX_new),
               XBB_LIBRARY_FUNCTION(library, EVP_MD_CTX_free),
               XBB_LIBRARY_FUNCTION(library, EVP_sha256),
               XBB_LIBRARY_FUNCTION(library, EVP_DigestInit_ex),
               XBB_LIBRARY_FUNCTION(library, EVP_DigestUpdate),
               XBB_LIBRARY_FUNCTION(library, EVP_DigestFinal_ex)};
  }();
  return functions;
}

}  // namespace

void Sha256::Free::operator()(EVP_MD_CTX* context) const { evp().md_ctx_free(context); }

Sha256::Sha256() : context_(evp().md_ctx_new()) {
  if (!context_ || evp().digest_init(context_.get(), evp().sha256(), nullptr) != 1) {
    throw Error("SHA-256: cannot initialise libcrypto's digest");
  }
}

Sha256& Sha256::update(std::string_view bytes) {
  if (evp().digest_update(context_.get(), bytes.data(), bytes.size()) != 1) {
    throw Error("SHA-256: digest update failed");
  }
  return *this;
}

std::string Sha256::hex() {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  if (evp().digest_final(context_.get(), digest, &size) != 1) {
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
