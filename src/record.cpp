#include "xbb/record.hpp"

#include <simdjson.h>

#include <algorithm>

#include "bootspec_document.hpp"
#include "json_input.hpp"
#include "limits.hpp"
#include "xbb/error.hpp"
#include "xbb/json_text.hpp"
#include "xbb/layout.hpp"

namespace xbb {
namespace {

// Read into a map (keys sorted), not ordered_json, whose inserts are linear.
using Json = nlohmann::json;

constexpr const char* kFormat = "xen-boot-builder record";
// A record of a thousand images is about 1 MB, nearly all of it their .config.
constexpr std::uint64_t kMaxRecordBytes = 16 << 20;
// Four levels of its own, then a bootspec's document.
constexpr std::size_t kMaxRecordDepth = 4 + limits::kJsonDepth;

FileStamp stamp_from(const Json& json) {
  return {json.at("size").get<std::uint64_t>(), json.at("mtime_ns").get<std::int64_t>()};
}

// `"name": {` then a `"path": {...}` line per entry, in the map's (path)
// order, then `}`, each piece passed to `out` as it is made. `render` gives
// an entry's JSON text.
template <typename Entry, typename Render>
void object_lines(std::string_view name, const std::map<std::string, Entry>& entries,
                  const Render& render, const RecordOut& out) {
  std::string piece = ",\n";
  append_json_text(piece, name);
  piece += ": ";
  if (entries.empty()) {
    out(piece + "{}");
    return;
  }
  out(piece);
  bool first = true;
  for (const auto& [path, entry] : entries) {
    piece.assign(first ? "{\n  " : ",\n  ");
    append_json_text(piece, path);
    piece += ": ";
    piece += render(entry);
    out(piece);
    first = false;
  }
  out("\n}");
}

// The memo as json_text renders the JSON object of its fields (keys sorted,
// on one line), written by hand: it lists every host file a run looked at.
std::string memo_text(const Memo& memo) {
  std::string text = "{\"built\":" + std::to_string(memo.built) + ",\"default_failure\":";
  if (memo.default_failure) {
    append_json_text(text, *memo.default_failure);
  } else {
    text += "null";
  }
  text += ",\"entries\":" + std::to_string(memo.entries);
  const auto list = [&text](std::string_view name, const std::vector<std::string>& items) {
    text += ",\"";
    text += name;
    text += "\":[";
    for (std::size_t i = 0; i < items.size(); ++i) {
      if (i > 0) text += ',';
      append_json_text(text, items[i]);
    }
    text += ']';
  };
  list("esp_files", memo.esp_files);
  list("host_files", memo.host_files);
  text += ",\"images\":{";
  bool first = true;
  for (const auto& [path, size] : memo.images) {
    if (!first) text += ',';
    first = false;
    append_json_text(text, path);
    text += ':' + std::to_string(size);
  }
  text += "},\"images_seen\":";
  append_json_text(text, memo.images_seen);
  text += ",\"inputs\":";
  append_json_text(text, memo.inputs);
  list("warnings", memo.warnings);
  return text + "}";
}

// The memo's JSON, read with simdjson: an unchanged run reads little else,
// and nlohmann's parser would take most of its time. nullopt when it is not
// a memo as memo_text writes it (a field missing or of another type
// included: each lookup's error is checked, never thrown).
std::optional<Memo> memo_from(std::string_view text) {
  namespace dom = simdjson::dom;
  using Found = simdjson::simdjson_result<dom::element>;
  dom::parser parser;
  dom::object json;
  if (text.size() > kMaxRecordBytes || parser.parse(text.data(), text.size()).get(json)) {
    return std::nullopt;
  }
  const auto text_of = [](Found value, std::string& into) {
    std::string_view view;
    if (value.get(view)) return false;
    into.assign(view);
    return true;
  };
  const auto texts_of = [&](Found value, std::vector<std::string>& into) {
    dom::array array;
    if (value.get(array)) return false;
    for (dom::element item : array) {
      if (!text_of(Found(dom::element(item)), into.emplace_back())) return false;
    }
    return true;
  };
  const auto count_of = [](Found value, std::size_t& into) {
    std::uint64_t number = 0;
    if (value.get(number)) return false;
    into = number;
    return true;
  };
  Memo memo;
  dom::object images;
  dom::element failure;
  if (!text_of(json["inputs"], memo.inputs) || !text_of(json["images_seen"], memo.images_seen) ||
      !texts_of(json["host_files"], memo.host_files) ||
      !texts_of(json["esp_files"], memo.esp_files) || json["images"].get(images) ||
      !count_of(json["entries"], memo.entries) || !count_of(json["built"], memo.built) ||
      !texts_of(json["warnings"], memo.warnings) || json["default_failure"].get(failure)) {
    return std::nullopt;
  }
  for (const auto [path, size] : images) {
    std::uint64_t config_size = 0;
    if (size.get(config_size)) return std::nullopt;
    memo.images.emplace(path, config_size);
  }
  if (!failure.is_null() && !text_of(Found(dom::element(failure)), memo.default_failure.emplace()))
    return std::nullopt;
  return memo;
}

// How a record's text starts, up to its memo.
const std::string& memo_prefix() {
  static const std::string prefix =
      "{\n" + Json("format").dump() + ": " + Json(kFormat).dump() + ",\n" + Json("version").dump() +
      ": " + Json(kRecordVersion).dump() + ",\n" + Json("memo").dump() + ": ";
  return prefix;
}

}  // namespace

void RecordHash::write(std::span<const std::uint8_t> bytes) {
  while (!bytes.empty()) {
    std::size_t take = bytes.size();
    if (size_ < kHeadBytes) {
      take = std::min<std::size_t>(take, kHeadBytes - size_);
      std::copy_n(bytes.begin(), take, head_.begin() + static_cast<std::ptrdiff_t>(size_));
      if (size_ + take == kHeadBytes) {
        if (head_[0] == 'M' && head_[1] == 'Z') {
          field_ = std::uint64_t{head_[60]} | std::uint64_t{head_[61]} << 8 |
                   std::uint64_t{head_[62]} << 16 | std::uint64_t{head_[63]} << 24;
          *field_ += 88;  // PE signature (4), file header (20), optional header's CheckSum (64)
        }
        hash_.update(head_);
      }
    } else if (field_ && size_ < *field_) {
      take = static_cast<std::size_t>(std::min<std::uint64_t>(take, *field_ - size_));
      hash_.update(bytes.first(take));
    } else if (field_ && size_ < *field_ + 4) {
      take = static_cast<std::size_t>(std::min<std::uint64_t>(take, *field_ + 4 - size_));
      std::copy_n(bytes.begin(), take,
                  checksum_.begin() + static_cast<std::ptrdiff_t>(size_ - *field_));
      if (size_ + take == *field_ + 4) hash_.update(std::array<std::uint8_t, 4>{});
    } else {
      hash_.update(bytes);
    }
    size_ += take;
    bytes = bytes.subspan(take);
  }
}

bool RecordHash::rewritable(std::uint64_t offset, std::size_t size) const {
  return field_ && size_ >= *field_ + 4 && offset >= *field_ && size <= 4 &&
         offset - *field_ <= 4 - size;
}

void RecordHash::write_at(std::uint64_t offset, std::span<const std::uint8_t> bytes) {
  if (!rewritable(offset, bytes.size())) {
    throw Error("record hash: only the PE CheckSum field, once streamed, may be written again");
  }
  std::copy(bytes.begin(), bytes.end(),
            checksum_.begin() + static_cast<std::ptrdiff_t>(offset - *field_));
}

std::string RecordHash::hex() {
  if (size_ < kHeadBytes) {
    hash_.update(std::span(head_).first(static_cast<std::size_t>(size_)));
  } else if (field_ && size_ >= *field_ + 4) {
    hash_.update(checksum_);
  } else if (field_ && size_ > *field_) {
    // The file ends within the field: it has none, and its last bytes are hashed as they are.
    hash_.update(std::span(checksum_).first(static_cast<std::size_t>(size_ - *field_)));
  }
  return hash_.hex();
}

std::string record_hash(std::string_view bytes) {
  RecordHash hash;
  hash.write({reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size()});
  return hash.hex();
}

std::size_t max_record_images(std::optional<std::uint64_t> esp_bytes) {
  if (!esp_bytes) return std::numeric_limits<std::size_t>::max();
  return static_cast<std::size_t>(4 * std::max<std::uint64_t>(1, *esp_bytes / kSmallestImageBytes));
}

std::optional<Record> parse_record(std::string_view text, std::size_t max_images) {
  Json json;
  try {
    json = parse_json<Json>(text, "record", kMaxRecordBytes, kMaxRecordDepth);
    if (json.at("format").get<std::string>() != kFormat) return std::nullopt;
    if (json.at("version").get<int>() != kRecordVersion) return std::nullopt;
    for (const char* key : {"images", "sources", "texts", "bootspecs"}) {
      if (!json.at(key).is_object()) return std::nullopt;
    }
  } catch (const Error&) {
    return std::nullopt;
  } catch (const Json::exception&) {
    return std::nullopt;
  }
  const std::size_t images = json.at("images").size();
  if (images > max_images) {
    throw Error("it lists " + std::to_string(images) + " images, more than the " +
                std::to_string(max_images) + " an ESP of this size can hold (4 times over)");
  }
  try {
    Record record;
    // The JSON object iterates in key order: each insert goes at the end.
    for (const auto& [path, image] : json.at("images").items()) {
      record.images.emplace_hint(
          record.images.end(), path,
          Record::Image{stamp_from(image), image.at("digest").get<std::string>(),
                        image.at("recipe").get<std::string>(),
                        image.at("config").get<std::string>(),
                        image.at("sha256").get<std::string>()});
    }
    for (const auto& [path, source] : json.at("sources").items()) {
      record.sources.emplace_hint(
          record.sources.end(), path,
          Record::Source{stamp_from(source), source.at("has_config").get<bool>(),
                         source.at("shared_digest").get<std::string>(),
                         source.at("shared_drops_debug").get<bool>()});
    }
    for (const auto& [path, text] : json.at("texts").items()) {
      record.texts.emplace_hint(record.texts.end(), path,
                                Record::Text{stamp_from(text), text.at("text").get<std::string>()});
    }
    record.root = json.at("root").get<std::string>();
    record.memo = read_memo(text).memo;
    for (const auto& [toplevel, known] : json.at("bootspecs").items()) {
      const std::string file = known.at("file").get<std::string>();
      const Json& document = known.at("document");
      std::optional<std::string> initrd;
      if (known.contains("initrd")) initrd = known.at("initrd").get<std::string>();
      record.bootspecs.emplace_hint(
          record.bootspecs.end(), toplevel,
          KnownBootspec{file, stamp_from(known),
                        std::make_shared<const std::string>(document.dump()),
                        std::make_shared<const Bootspec>(bootspec_from_document(document, file)),
                        known.at("xen_efi").get<std::string>(),
                        known.at("kernel").get<std::string>(), initrd});
    }
    return record;
  } catch (const Json::exception&) {
    return std::nullopt;
  } catch (const Error&) {
    return std::nullopt;  // a bootspec document that does not read
  }
}

void render_record_rest(const Record& record, const RecordOut& out) {
  // Each entry as json_text renders the JSON object of its fields (keys
  // sorted, on one line), written by hand: a record holds hundreds.
  std::string line;
  const auto key = [&line](std::string_view name) {
    line += '"';
    line += name;
    line += "\":";
  };
  const auto text = [&line, &key](std::string_view name, std::string_view value) {
    key(name);
    append_json_text(line, value);
    line += ',';
  };
  const auto number = [&line, &key](std::string_view name, auto value) {
    key(name);
    line += std::to_string(value);
    line += ',';
  };
  const auto truth = [&line, &key](std::string_view name, bool value) {
    key(name);
    line += value ? "true," : "false,";
  };
  // The stamp's fields, then `after` (fields sorted after "size"), closed.
  const auto close = [&line, &number](const FileStamp& stamp) {
    number("size", stamp.size);
    line.back() = '}';
  };
  object_lines(
      "images", record.images,
      [&](const Record::Image& image) {
        line.assign("{");
        text("config", image.config);
        text("digest", image.digest);
        number("mtime_ns", image.stamp.mtime_ns);
        text("recipe", image.recipe);
        text("sha256", image.sha256);
        close(image.stamp);
        return line;
      },
      out);
  object_lines(
      "sources", record.sources,
      [&](const Record::Source& source) {
        line.assign("{");
        truth("has_config", source.has_config);
        number("mtime_ns", source.stamp.mtime_ns);
        text("shared_digest", source.shared_digest);
        truth("shared_drops_debug", source.shared_drops_debug);
        close(source.stamp);
        return line;
      },
      out);
  object_lines(
      "texts", record.texts,
      [&](const Record::Text& entry) {
        line.assign("{");
        number("mtime_ns", entry.stamp.mtime_ns);
        number("size", entry.stamp.size);
        text("text", entry.text);
        line.back() = '}';
        return line;
      },
      out);
  line.assign(",\n\"root\": ");
  append_json_text(line, record.root);
  out(line);
  // The document is kept as JSON text: written as it is, not parsed again.
  object_lines(
      "bootspecs", record.bootspecs,
      [&](const KnownBootspec& known) {
        line.assign("{\"document\": ");
        line += *known.document;
        line += ", ";
        text("file", known.file);
        if (known.initrd) text("initrd", *known.initrd);
        text("kernel", known.kernel);
        number("mtime_ns", known.stamp.mtime_ns);
        number("size", known.stamp.size);
        text("xen_efi", known.xen_efi);
        line.back() = '}';
        return line;
      },
      out);
  out("\n}\n");
}

void render_record(const Record& record, const RecordOut& out) {
  out(memo_prefix());
  out(record.memo ? memo_text(*record.memo) : "null");
  render_record_rest(record, out);
}

std::string render_record(const Record& record) {
  std::string text;
  render_record(record, [&text](std::string_view piece) { text.append(piece); });
  return text;
}

std::optional<Record::Image> recorded_image(const std::optional<Record>& record,
                                            const std::string& path, const FileStamp& stamp) {
  if (!record) return std::nullopt;
  auto found = record->images.find(path);
  if (found == record->images.end() || found->second.stamp != stamp) return std::nullopt;
  return found->second;
}

std::optional<ExistingFile> vouched_image(const Record::Image& recorded, std::string_view name,
                                          const ImageRead& read) {
  if (read.stamp != recorded.stamp || !read.efi_application) return std::nullopt;
  const bool same_config =
      read.has_config ? read.config == recorded.config : recorded.config.empty();
  if (!same_config) return std::nullopt;
  auto shared = layout::shared_image_digest(name);
  const bool ours =
      layout::is_marked(recorded.config) || (shared && recorded.sha256.starts_with(*shared));
  return ExistingFile{
      recorded.config, ours,
      recorded.stamp,  recorded.digest,
      recorded.recipe, recorded.sha256.empty() ? std::nullopt : std::optional(recorded.sha256)};
}

MemoRead read_memo(std::string_view text) {
  const std::string& prefix = memo_prefix();
  if (!text.starts_with(prefix)) return {};
  // The memo is one line of compact JSON (no newline in it): the first ",\n"
  // after the prefix ends it.
  const std::size_t end = text.find(",\n", prefix.size());
  if (end == std::string_view::npos) return {};
  // A memo that does not read is none: the run reads everything.
  return {memo_from(text.substr(prefix.size(), end - prefix.size())), text.substr(end)};
}

bool holds_memo_line(std::string_view head) {
  const std::string& prefix = memo_prefix();
  if (head.size() < prefix.size()) return !std::string_view(prefix).starts_with(head);
  return !head.starts_with(prefix) || head.find(",\n", prefix.size()) != std::string_view::npos;
}

std::optional<ExistingFile> vouched_text(const std::optional<Record>& record,
                                         const std::string& path, const FileStamp& stamp) {
  if (!record) return std::nullopt;
  auto found = record->texts.find(path);
  if (found == record->texts.end() || found->second.stamp != stamp) return std::nullopt;
  const std::string& text = found->second.text;
  ExistingFile file;
  file.text = text;
  file.ours = layout::is_marked(text);
  file.stamp = stamp;
  return file;
}

std::optional<Record::Source> reused_source(const std::optional<Record>& record,
                                            const std::string& path, const FileStamp& stamp,
                                            bool may_share, bool drop_debug) {
  if (!record) return std::nullopt;
  auto found = record->sources.find(path);
  if (found == record->sources.end() || found->second.stamp != stamp) return std::nullopt;
  const Record::Source& recorded = found->second;
  if (may_share && (recorded.shared_digest.empty() || recorded.shared_drops_debug != drop_debug))
    return std::nullopt;
  return recorded;
}

}  // namespace xbb
