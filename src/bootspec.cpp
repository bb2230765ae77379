#include "xbb/bootspec.hpp"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "bootspec_document.hpp"
#include "json_input.hpp"
#include "limits.hpp"
#include "text.hpp"
#include "xbb/error.hpp"
#include "xbb/json_text.hpp"

namespace xbb {
namespace {

// ordered_json keeps the document's key order (specialisations are listed in it).
using Json = nlohmann::ordered_json;

constexpr const char* kBootspecV1 = "org.nixos.bootspec.v1";
constexpr const char* kSpecialisationV1 = "org.nixos.specialisation.v1";
constexpr const char* kSystemdBoot = "org.nixos.systemd-boot";
constexpr const char* kXenV1 = "org.xenproject.bootspec.v1";
constexpr const char* kXenV2 = "org.xenproject.bootspec.v2";
constexpr const char* kLanzaboote = "org.nix-community.lanzaboote";

using text::line_break_problem;

// What is wrong with a store path, or nullopt when nothing is.
std::optional<std::string> store_path_problem(const std::string& path) {
  if (path.empty() || path.front() != '/') return "must be an absolute path";
  for (std::string_view component : text::split(path, '/')) {
    if (component == "." || component == "..") return "must not have a '.' or '..' component";
  }
  return std::nullopt;
}

// A name as it appears in a field path: as is, or JSON-quoted when it holds a
// character that would break the one-line message.
std::string printable_name(const std::string& name) {
  if (!line_break_problem(name)) return name;
  return json_text(name);
}

// One JSON object of the document, with the field path that leads to it.
// Every read checks type and content and throws an Error naming the field.
class Object {
 public:
  Object(const Json& json, std::string path, const std::string& origin)
      : json_(json), path_(std::move(path)), origin_(origin) {
    if (!json_.is_object()) {
      throw Error(origin_, path_.empty() ? "must be a JSON object" : path_ + ": must be an object");
    }
  }

  bool has(const std::string& key) const { return json_.contains(key); }

  Object object(const std::string& key) const { return Object(required(key), field(key), origin_); }

  std::optional<Object> optional_object(const std::string& key) const {
    if (!has(key)) return std::nullopt;
    return object(key);
  }

  std::string string(const std::string& key) const {
    return checked_string(required(key), field(key));
  }

  std::optional<std::string> optional_string(const std::string& key) const {
    if (!has(key)) return std::nullopt;
    return string(key);
  }

  std::string store_path(const std::string& key) const {
    std::string path = string(key);
    if (auto problem = store_path_problem(path)) fail(field(key), *problem);
    return path;
  }

  std::optional<std::string> optional_store_path(const std::string& key) const {
    if (!has(key)) return std::nullopt;
    return store_path(key);
  }

  std::vector<std::string> strings(const std::string& key) const {
    const Json& array = required(key);
    if (!array.is_array()) fail(field(key), "must be an array of strings");
    std::vector<std::string> result;
    for (std::size_t i = 0; i < array.size(); ++i) {
      result.push_back(checked_string(array[i], field(key) + "[" + std::to_string(i) + "]"));
    }
    return result;
  }

  // The members, in document order.
  const Json& json() const { return json_; }
  // The path of a member, e.g. `org.xenproject.bootspec.v2.params`.
  std::string field(const std::string& key) const {
    return path_.empty() ? printable_name(key) : path_ + "." + printable_name(key);
  }
  const std::string& origin() const { return origin_; }

 private:
  [[noreturn]] void fail(const std::string& field_path, const std::string& what) const {
    throw Error(origin_, field_path + ": " + what);
  }

  const Json& required(const std::string& key) const {
    auto it = json_.find(key);
    if (it == json_.end()) fail(field(key), "missing");
    return *it;
  }

  std::string checked_string(const Json& value, const std::string& field_path) const {
    if (!value.is_string()) fail(field_path, "must be a string");
    std::string text = value.get<std::string>();
    if (auto problem = line_break_problem(text)) fail(field_path, *problem);
    return text;
  }

  const Json& json_;
  std::string path_;
  const std::string& origin_;
};

void read_core(const Object& core, Bootspec& spec) {
  spec.system = core.string("system");
  spec.init = core.store_path("init");
  spec.kernel = core.store_path("kernel");
  spec.kernel_params = core.strings("kernelParams");
  spec.label = core.string("label");
  spec.toplevel = core.store_path("toplevel");
  spec.initrd = core.optional_store_path("initrd");
  spec.initrd_secrets = core.optional_store_path("initrdSecrets");
}

void read_systemd_boot(const Object& systemd_boot, Bootspec& spec) {
  spec.sort_key = systemd_boot.optional_string("sortKey");
  spec.devicetree = systemd_boot.optional_store_path("devicetree");
}

XenExtension read_xen_v2(const Object& v2) {
  XenExtension xen;
  xen.schema = 2;
  xen.efi_path = v2.store_path("efiPath");
  xen.params = v2.strings("params");
  xen.multiboot_path = v2.optional_store_path("multibootPath");
  xen.version = v2.optional_string("version");
  return xen;
}

XenExtension read_xen_v1(const Object& v1) {
  XenExtension xen;
  xen.schema = 1;
  xen.efi_path = v1.has("xen") ? v1.store_path("xen") : v1.store_path("efiPath");
  xen.params = v1.strings("xenParams");
  return xen;
}

// v2 when present (v1 is then not read at all), else v1, else no Xen.
std::optional<XenExtension> read_xen(const Object& document) {
  if (auto v2 = document.optional_object(kXenV2)) return read_xen_v2(*v2);
  if (auto v1 = document.optional_object(kXenV1)) return read_xen_v1(*v1);
  return std::nullopt;
}

bool is_control(char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; }

// What is wrong with Lanzaboote's extension as a source of the sort key, or
// nullopt when nothing is.
std::optional<std::string> lanzaboote_problem(const Json& lanzaboote, const std::string& field) {
  if (!lanzaboote.is_object()) return field + ": must be an object";
  auto key = lanzaboote.find("sort_key");
  if (key == lanzaboote.end()) return std::nullopt;
  if (!key->is_string()) return field + ".sort_key: must be a string";
  const std::string value = key->get<std::string>();
  if (std::any_of(value.begin(), value.end(), is_control)) {
    return field + ".sort_key: holds a control character (" + text::printable(value) + ")";
  }
  return std::nullopt;
}

// Lanzaboote's sort_key, when the extension gives one that can be used; what
// is wrong with one that cannot, without failing the document.
void read_lanzaboote(const Object& document, Bootspec& spec) {
  auto lanzaboote = document.json().find(kLanzaboote);
  if (lanzaboote == document.json().end()) return;
  if (auto problem = lanzaboote_problem(*lanzaboote, document.field(kLanzaboote))) {
    spec.lanzaboote_sort_key_problem = document.origin() + ": " + *problem;
    return;
  }
  if (auto key = lanzaboote->find("sort_key"); key != lanzaboote->end())
    spec.lanzaboote_sort_key = key->get<std::string>();
}

// Reads one document; its specialisations only when `with_specialisations`.
Bootspec read_document(const Object& document, bool with_specialisations);

// Reads each specialisation as a document of its own. One that fails is
// recorded in broken_specialisations and does not fail its parent.
void read_specialisations(const Object& specialisations, Bootspec& spec) {
  for (const auto& [name, json] : specialisations.json().items()) {
    std::string field = specialisations.field(name);
    try {
      if (auto problem = line_break_problem(name)) {
        throw Error(specialisations.origin(), field + ": name " + *problem);
      }
      Object document(json, field, specialisations.origin());
      spec.specialisations.emplace_back(name, read_document(document, false));
    } catch (const Error& error) {
      spec.broken_specialisations.emplace_back(printable_name(name), error.what());
    }
  }
}

Bootspec read_document(const Object& document, bool with_specialisations) {
  Bootspec spec;
  read_core(document.object(kBootspecV1), spec);
  if (auto systemd_boot = document.optional_object(kSystemdBoot)) {
    read_systemd_boot(*systemd_boot, spec);
  }
  spec.xen = read_xen(document);
  read_lanzaboote(document, spec);
  if (with_specialisations) {
    if (auto specialisations = document.optional_object(kSpecialisationV1)) {
      read_specialisations(*specialisations, spec);
    }
  }
  return spec;
}

// Appends `value` as nlohmann::json(value).dump() writes it (objects with
// their keys sorted, on one line), without building that copy. Strings are
// well-formed UTF-8: the parser refuses any other.
void append_sorted(std::string& out, const Json& value) {
  if (value.is_string()) {
    append_json_text(out, value.get_ref<const std::string&>());
  } else if (value.is_array()) {
    out += '[';
    for (std::size_t i = 0; i < value.size(); ++i) {
      if (i > 0) out += ',';
      append_sorted(out, value[i]);
    }
    out += ']';
  } else if (value.is_object()) {
    std::vector<const Json::object_t::value_type*> members;
    members.reserve(value.size());
    for (const auto& member : value.get_ref<const Json::object_t&>()) members.push_back(&member);
    std::sort(members.begin(), members.end(),
              [](const auto* a, const auto* b) { return a->first < b->first; });
    out += '{';
    for (const auto* member : members) {
      if (member != members.front()) out += ',';
      append_json_text(out, member->first);
      out += ':';
      append_sorted(out, member->second);
    }
    out += '}';
  } else {
    out += value.dump();
  }
}

}  // namespace

Bootspec::Bootspec() = default;
Bootspec::Bootspec(const Bootspec&) = default;
Bootspec::Bootspec(Bootspec&&) noexcept = default;
Bootspec& Bootspec::operator=(const Bootspec&) = default;
Bootspec& Bootspec::operator=(Bootspec&&) noexcept = default;
Bootspec::~Bootspec() = default;

Bootspec parse_bootspec(std::string_view json_text, const std::string& origin) {
  const Json json = parse_json(json_text, origin, limits::kBootspecBytes, limits::kJsonDepth);
  return read_document(Object(json, "", origin), true);
}

BootspecDocument parse_bootspec_document(std::string_view json_text, const std::string& origin) {
  Json json = parse_json(json_text, origin, limits::kBootspecBytes, limits::kJsonDepth);
  BootspecDocument read{read_document(Object(json, "", origin), true), ""};
  json.erase(kSpecialisationV1);
  // With its keys sorted, as the record's reader gives it back.
  read.document.reserve(json_text.size());
  append_sorted(read.document, json);
  read.document.shrink_to_fit();  // kept for the run: without the room it grew into
  return read;
}

Bootspec bootspec_from_document(const nlohmann::json& document, const std::string& origin) {
  const Json ordered(document);
  return read_document(Object(ordered, "", origin), false);
}

}  // namespace xbb
