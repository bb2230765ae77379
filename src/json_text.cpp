#include "xbb/json_text.hpp"

#include <algorithm>

#include "text.hpp"

namespace xbb {
namespace {

using Json = nlohmann::ordered_json;

bool is_clean(const Json& value) {
  if (value.is_string()) return text::is_utf8(value.get_ref<const std::string&>());
  if (value.is_array()) return std::all_of(value.begin(), value.end(), is_clean);
  if (!value.is_object()) return true;
  for (const auto& [key, item] : value.items()) {
    if (!text::is_utf8(key) || !is_clean(item)) return false;
  }
  return true;
}

Json escaped(const Json& value) {
  if (value.is_string()) return text::utf8_escaped(value.get_ref<const std::string&>());
  if (value.is_array()) {
    Json out = Json::array();
    for (const Json& item : value) out.push_back(escaped(item));
    return out;
  }
  if (!value.is_object()) return value;
  Json out = Json::object();
  for (const auto& [key, item] : value.items()) out[text::utf8_escaped(key)] = escaped(item);
  return out;
}

// Appends well-formed UTF-8 as nlohmann's dump writes a string's
// characters: quote, backslash and control characters escaped, the rest as
// it is.
void append_escaped(std::string& out, std::string_view text) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::size_t clean = 0;  // start of the bytes not yet appended
  for (std::size_t i = 0; i < text.size(); ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    out.append(text.substr(clean, i - clean));
    clean = i + 1;
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        out += "\\u00";
        out += kHex[c >> 4];
        out += kHex[c & 0xf];
    }
  }
  out.append(text.substr(clean));
}

}  // namespace

void append_json_text(std::string& out, std::string_view text) {
  out += '"';
  if (text::is_utf8(text)) {
    append_escaped(out, text);
  } else {
    append_escaped(out, text::utf8_escaped(text));
  }
  out += '"';
}

std::string json_text(const Json& document, int indent) {
  return is_clean(document) ? document.dump(indent) : escaped(document).dump(indent);
}

}  // namespace xbb
