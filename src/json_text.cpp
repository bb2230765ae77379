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

}  // namespace

std::string json_text(const Json& document, int indent) {
  return is_clean(document) ? document.dump(indent) : escaped(document).dump(indent);
}

}  // namespace xbb
