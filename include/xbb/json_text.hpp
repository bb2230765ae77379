#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace xbb {

// The text of a JSON document the tool writes (every --json output and the
// record): `document` dumped as nlohmann's dump(indent) does (-1: on one
// line), with every string and key that is not well-formed UTF-8 holding each
// stray byte as the four characters \xNN, the way messages show bytes they
// cannot print. Paths and names come from the file system and from files
// the tool reads, so they may hold any byte; nlohmann's dump would throw on
// them. Never throws for a document the tool builds.
std::string json_text(const nlohmann::ordered_json& document, int indent = -1);

// Appends the JSON string `text` to `out` exactly as json_text renders a
// string (stray bytes as \xNN), without building a JSON value: for texts
// written many at a time (the record).
void append_json_text(std::string& out, std::string_view text);

}  // namespace xbb
