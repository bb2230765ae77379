#pragma once

// Reading JSON documents the tool did not write (boot.json) or may find
// damaged (its own state file). Internal to the library.

#include <cstddef>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace xbb {

// Parses `text` as a `Json` (nlohmann::ordered_json keeps the key order;
// nlohmann::json sorts keys in a map, so that a document of n keys is read in
// O(n log n), where ordered_json's inserts make it quadratic), after checking,
// without building anything, that it is at most `max_bytes` long and nests at
// most `max_depth` arrays and objects deep: deeper documents would exhaust
// the stack when the tree is copied or destroyed. A number too large for a
// double (1e400) is read as null: the tool reads no number from these
// documents, so such a number where a string is expected stays an error
// ("must be a string") and anywhere else does not matter. Throws Error
// naming `origin` for a document too large or too deep and for invalid JSON.
template <typename Json = nlohmann::ordered_json>
Json parse_json(std::string_view text, const std::string& origin, std::size_t max_bytes,
                std::size_t max_depth);

extern template nlohmann::ordered_json parse_json(std::string_view, const std::string&, std::size_t,
                                                  std::size_t);
extern template nlohmann::json parse_json(std::string_view, const std::string&, std::size_t,
                                          std::size_t);

}  // namespace xbb
