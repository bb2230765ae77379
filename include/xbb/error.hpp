#pragma once

#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>

namespace xbb {

// What kind of failure stopped a run: the one-shot command and the daemon
// both act on it (the daemon backs off and retries, says why).
enum class ErrorKind {
  failed,        // anything else: an I/O error, a refused file
  esp_missing,   // the ESP cannot be opened (not mounted, not a folder)
  esp_full,      // not enough free space for the plan (nothing was written), or the ESP
                 // filled up during the run (ENOSPC, EDQUOT; what was written is consistent)
  lock_timeout,  // another run held the ESP lock for too long
};

// "failed", "esp-missing", "esp-full", "lock-timeout".
const char* kind_name(ErrorKind kind);

// The one error type users see. Its message is a single line that says what
// went wrong and where: a path, a generation, a field, an offset.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message, ErrorKind kind = ErrorKind::failed)
      : std::runtime_error(message), kind_(kind) {}
  Error(const std::string& where, const std::string& message, ErrorKind kind = ErrorKind::failed)
      : std::runtime_error(where + ": " + message), kind_(kind) {}

  ErrorKind kind() const { return kind_; }

  // This error with `where` before its message ("where: message"), its kind
  // kept: how a caller adds the path or name it knows and the thrower did not.
  Error within(const std::string& where) const { return Error(where, what(), kind_); }

 private:
  ErrorKind kind_;
};

// What `compute()` returns, or nullopt when it throws Error, whose message is
// then handed to `why` (a Reporter's debug, a list of notes): for a caller
// that goes on without the value, so that the reason is never lost.
template <typename Compute, typename Why>
auto value_or_reason(Compute&& compute, Why&& why) -> std::optional<std::invoke_result_t<Compute>> {
  try {
    return compute();
  } catch (const Error& e) {
    why(std::string(e.what()));
    return std::nullopt;
  }
}

}  // namespace xbb
