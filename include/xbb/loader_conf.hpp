#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace xbb {

// Maps the value of a `default` or `preferred` line (an entry file name such
// as "nixos-abc.conf", a stem, or a glob such as "nixos-*") to the value that
// should replace it, or nullopt to leave the line alone.
using RetargetFn = std::function<std::optional<std::string>(std::string_view value)>;

// Lines of loader.conf: the key is the first word (after optional spaces or
// tabs, case-sensitive), the value is the rest of the line after the spaces or
// tabs that follow the key, without trailing spaces, tabs and the CR of a CRLF.
// Lines starting with `#` (after optional spaces or tabs) are comments; there
// are no comments at the end of a line.

// Returns loader.conf text with each `default`/`preferred` value replaced as
// `retarget` says (`retarget` is not called for a line without a value).
// Every other line, comments, the bytes before and after the value (spacing
// between key and value, trailing spaces), the newline convention (LF or
// CRLF) and the presence or absence of a final newline are kept byte for
// byte. Throws Error when a replacement is empty or contains a newline,
// carriage return or NUL.
std::string retarget_loader_conf(std::string_view text, const RetargetFn& retarget);

// The value of the last `key` line that has one (systemd-boot uses the last
// one, and skips a line with the key alone); nullopt when there is none.
std::optional<std::string> loader_conf_value(std::string_view text, std::string_view key);

}  // namespace xbb
