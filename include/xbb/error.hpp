#pragma once

#include <stdexcept>
#include <string>

namespace xbb {

// The one error type users see. Its message is a single line that says what
// went wrong and where: a path, a generation, a field, an offset.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
  Error(const std::string& where, const std::string& message)
      : std::runtime_error(where + ": " + message) {}
};

}  // namespace xbb
