#pragma once

// A bootspec as the record keeps it (see KnownBootspec): the document without
// its specialisations, which a generation read from its source entry never
// uses (each specialisation has an entry and a toplevel of its own). Internal
// to the library.

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "xbb/bootspec.hpp"

namespace xbb {

struct BootspecDocument {
  Bootspec spec;         // as parse_bootspec reads the text
  std::string document;  // the text as compact JSON, without org.nixos.specialisation.v1
};

// parse_bootspec, and the document to keep. Throws as parse_bootspec does.
BootspecDocument parse_bootspec_document(std::string_view json_text, const std::string& origin);

// A kept document read again: what parse_bootspec read of the text it came
// from, without the specialisations. Throws Error, naming `origin` and the
// field, for a document that is not a bootspec (a damaged record).
Bootspec bootspec_from_document(const nlohmann::json& document, const std::string& origin);

}  // namespace xbb
