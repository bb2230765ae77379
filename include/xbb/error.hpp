#pragma once

#include <stdexcept>
#include <string>

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

 private:
  ErrorKind kind_;
};

}  // namespace xbb
