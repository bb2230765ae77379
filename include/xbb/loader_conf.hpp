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

// Returns loader.conf text with each `default`/`preferred` value replaced as
// `retarget` says. Every other line, comments, spacing between key and value,
// the newline convention (LF or CRLF) and the presence or absence of a final
// newline are kept byte for byte.
std::string retarget_loader_conf(std::string_view text, const RetargetFn& retarget);

// The value of the last `key` line, if any (systemd-boot uses the last one).
std::optional<std::string> loader_conf_value(std::string_view text, std::string_view key);

}  // namespace xbb
