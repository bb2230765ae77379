#include "xbb/record.hpp"

#include "json_input.hpp"
#include "xbb/error.hpp"
#include "xbb/json_text.hpp"

namespace xbb {
namespace {

using Json = nlohmann::ordered_json;

constexpr const char* kFormat = "xen-boot-builder record";
// A record of a thousand images is about 1 MB, nearly all of it their .config.
constexpr std::uint64_t kMaxRecordBytes = 16 << 20;
constexpr std::size_t kMaxRecordDepth = 4;

FileStamp stamp_from(const Json& json) {
  return {json.at("size").get<std::uint64_t>(), json.at("mtime_ns").get<std::int64_t>()};
}

Json stamp_json(const FileStamp& stamp) {
  return Json{{"size", stamp.size}, {"mtime_ns", stamp.mtime_ns}};
}

}  // namespace

std::optional<Record> parse_record(std::string_view text) {
  try {
    const Json json = parse_json(text, "record", kMaxRecordBytes, kMaxRecordDepth);
    if (json.at("format").get<std::string>() != kFormat) return std::nullopt;
    if (json.at("version").get<int>() != kRecordVersion) return std::nullopt;
    Record record;
    for (const auto& [path, image] : json.at("images").items()) {
      record.images[path] = {stamp_from(image), image.at("digest").get<std::string>(),
                             image.at("recipe").get<std::string>(),
                             image.at("config").get<std::string>()};
    }
    for (const auto& [path, source] : json.at("sources").items()) {
      record.sources[path] = {stamp_from(source), source.at("has_config").get<bool>(),
                              source.at("shared_digest").get<std::string>(),
                              source.at("shared_drops_debug").get<bool>()};
    }
    for (const auto& path : json.at("foreign")) record.foreign.push_back(path.get<std::string>());
    return record;
  } catch (const Error&) {
    return std::nullopt;
  } catch (const Json::exception&) {
    return std::nullopt;
  }
}

std::string render_record(const Record& record) {
  Json images = Json::object();
  for (const auto& [path, image] : record.images) {
    Json entry = stamp_json(image.stamp);
    entry["digest"] = image.digest;
    entry["recipe"] = image.recipe;
    entry["config"] = image.config;
    images[path] = std::move(entry);
  }
  Json sources = Json::object();
  for (const auto& [path, source] : record.sources) {
    Json entry = stamp_json(source.stamp);
    entry["has_config"] = source.has_config;
    entry["shared_digest"] = source.shared_digest;
    entry["shared_drops_debug"] = source.shared_drops_debug;
    sources[path] = std::move(entry);
  }
  Json json = {{"format", kFormat},
               {"version", kRecordVersion},
               {"images", images},
               {"sources", sources},
               {"foreign", record.foreign}};
  std::string text = "{\n";
  bool first = true;
  for (const auto& [key, value] : json.items()) {
    text += std::string(first ? "" : ",\n") + json_text(key) + ": ";
    first = false;
    if (!value.is_object() || value.empty()) {
      text += json_text(value);
      continue;
    }
    text += "{\n";
    bool first_item = true;
    for (const auto& [item_key, item] : value.items()) {
      text += std::string(first_item ? "" : ",\n") + "  " + json_text(item_key) + ": " +
              json_text(item);
      first_item = false;
    }
    text += "\n}";
  }
  return text + "\n}\n";
}

}  // namespace xbb
