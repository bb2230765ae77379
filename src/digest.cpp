#include "xbb/digest.hpp"

// SHA256_Init and the rest are deprecated (EVP is OpenSSL 3's way), but
// used: EVP's first digest initialises providers, reads openssl.cnf and so
// on, which keeps 1.7 MiB more of libcrypto resident, for the same
// compression function.
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/sha.h>
#include <xxhash.h>

#include "hex.hpp"
#include "shared_library.hpp"
#include "xbb/error.hpp"

namespace xbb {

namespace {

// libcrypto's SHA-256 functions, loaded by the first Sha256: a run that
// hashes nothing never loads OpenSSL. XBB_LIBCRYPTO is its path (CMakeLists.txt).
struct Sha256Functions {
  decltype(&::SHA256_Init) init;
  decltype(&::SHA256_Update) update;
  decltype(&::SHA256_Final) final;
};

const Sha256Functions& sha256_functions() {
  static const Sha256Functions functions = [] {
    const SharedLibrary library("libcrypto", XBB_LIBCRYPTO);
    return Sha256Functions{XBB_LIBRARY_FUNCTION(library, SHA256_Init),
                           XBB_LIBRARY_FUNCTION(library, SHA256_Update),
                           XBB_LIBRARY_FUNCTION(library, SHA256_Final)};
  }();
  return functions;
}

}  // namespace

void Sha256::Free::operator()(SHA256state_st* context) const { delete context; }

Sha256::Sha256() : context_(new SHA256_CTX) {
  if (sha256_functions().init(context_.get()) != 1) {
    throw Error("SHA-256: cannot initialise libcrypto's digest");
  }
}

Sha256& Sha256::update(std::string_view bytes) {
  if (sha256_functions().update(context_.get(), bytes.data(), bytes.size()) != 1) {
    throw Error("SHA-256: digest update failed");
  }
  return *this;
}

std::string Sha256::hex() {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  if (sha256_functions().final(digest, context_.get()) != 1) {
    throw Error("SHA-256: digest final failed");
  }
  return hex_bytes(digest, sizeof digest);
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
