#pragma once

// Reading JSON documents the tool did not write (boot.json) or may find
// damaged (its own state file). Internal to the library.

#include <cstddef>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace xbb {

// Parses `text` with nlohmann::ordered_json (key order kept), after checking,
// without building anything, that it is at most `max_bytes` long and nests at
// most `max_depth` arrays and objects deep: deeper documents would exhaust
// the stack when the tree is copied or destroyed. A number too large for a
// double (1e400) is read as null: the tool reads no number from these
// documents, so such a number where a string is expected stays an error
// ("must be a string") and anywhere else does not matter. Throws Error
// naming `origin` for a document too large or too deep and for invalid JSON.
nlohmann::ordered_json parse_json(std::string_view text, const std::string& origin,
                                  std::size_t max_bytes, std::size_t max_depth);

}  // namespace xbb
