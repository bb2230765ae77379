#include "xbb/signer.hpp"

#include "embed.hpp"
#include "posix_io.hpp"
#include "process.hpp"
#include "xbb/error.hpp"

namespace xbb {
namespace {

// A key or certificate: a few KB.
constexpr std::uint64_t kKeyFileBytes = 1 << 20;

void run_checked(const std::vector<std::string>& argv, const std::vector<int>& pass,
                 std::chrono::milliseconds limit, const std::string& what) {
  const ProgramResult result = run_program(argv, pass, limit);
  if (result.ok()) return;
  const std::string said = last_line(result.output);
  throw Error(what + " failed (" + argv[0] + ", " + how_it_ended(result) + ")" +
              (said.empty() ? "" : ": " + said));
}

}  // namespace

SbsignSigner::SbsignSigner(std::optional<std::filesystem::path> key, std::filesystem::path cert,
                           std::chrono::seconds limit)
    : key_(std::move(key)), cert_(std::move(cert)), limit_(limit) {
  if (key_) posix::host_file_stamp(*key_, kKeyFileBytes, "signing key");
  identity_ = sha256_of_file(cert_, kKeyFileBytes);
}

void SbsignSigner::sign(int input, int output) const {
  if (!key_) throw Error("signing needs a key (--sign-key)");
  run_checked({"sbsign", "--key", key_->string(), "--cert", cert_.string(), "--output",
               passed_path(1), passed_path(0)},
              {input, output}, limit_, "signing");
  check(output);
}

void SbsignSigner::check(int image) const {
  run_checked({"sbverify", "--cert", cert_.string(), passed_path(0)}, {image}, limit_,
              "checking the signature");
}

}  // namespace xbb
