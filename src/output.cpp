#include "xbb/output.hpp"

#include "xbb/error.hpp"

namespace xbb {
namespace {

// The versions of the schemas in man/json/.
constexpr int kPlanVersion = 1;
constexpr int kListVersion = 1;
constexpr int kVerifyVersion = 1;
constexpr int kInspectVersion = 1;

nlohmann::ordered_json header(const std::string& name, int version) {
  return {{"schema", "xen-boot-builder/" + name}, {"version", version}};
}

template <typename T>
nlohmann::ordered_json or_null(const std::optional<T>& value) {
  return value ? nlohmann::ordered_json(*value) : nlohmann::ordered_json(nullptr);
}

const char* status_name(GenerationOutcome::Status status) {
  switch (status) {
    case GenerationOutcome::Status::xen_entry:
      return "xen-entry";
    case GenerationOutcome::Status::skipped:
      return "skipped";
    case GenerationOutcome::Status::no_xen:
      break;
  }
  return "no-xen";
}

const char* change_name(char kind) {
  return kind == '+' ? "added" : kind == '-' ? "removed" : "changed";
}

nlohmann::ordered_json generations_json(const RunResult& result) {
  nlohmann::ordered_json list = nlohmann::ordered_json::array();
  for (const auto& generation : result.generations) {
    list.push_back({
        {"label", generation.label},
        {"source", generation.source},
        {"generation", or_null(generation.number)},
        {"status", status_name(generation.status)},
        {"reason", generation.reason.empty() ? nlohmann::ordered_json(nullptr)
                                             : nlohmann::ordered_json(generation.reason)},
        {"entry", or_null(generation.entry)},
        {"files", generation.files},
        {"layout", generation.layout.empty()
                       ? nlohmann::ordered_json(nullptr)
                       : nlohmann::ordered_json{{"kind", generation.layout},
                                                {"reason", generation.layout_reason}}},
        {"xen_efi", generation.xen_efi.empty() ? nlohmann::ordered_json(nullptr)
                                               : nlohmann::ordered_json(generation.xen_efi)},
        {"default", generation.is_default},
        {"installed", generation.installed},
    });
  }
  return list;
}

nlohmann::ordered_json error_json(const RunResult& result) {
  if (!result.error) return nullptr;
  return {{"kind", kind_name(*result.error)}, {"message", result.error_message}};
}

}  // namespace

nlohmann::ordered_json plan_json(const RunResult& result) {
  nlohmann::ordered_json document = header("plan", kPlanVersion);
  nlohmann::ordered_json changes = nlohmann::ordered_json::array();
  for (const auto& change : result.changes) {
    changes.push_back(
        {{"kind", change_name(change.kind)}, {"entry", change.name}, {"detail", change.detail}});
  }
  document["ok"] = result.exit_status() == 0;
  document["changes"] = std::move(changes);
  document["writes"] = result.written;
  document["removals"] = result.removed;
  document["warnings"] = result.warnings;
  document["default_failure"] = or_null(result.default_failure);
  document["error"] = error_json(result);
  document["failed_extra_esps"] = nlohmann::ordered_json::array();
  for (const auto& failure : result.partition_failures) {
    document["failed_extra_esps"].push_back(
        {{"esp", failure.esp}, {"kind", kind_name(failure.kind)}, {"message", failure.message}});
  }
  document["generations"] = generations_json(result);
  return document;
}

nlohmann::ordered_json list_json(const RunResult& result) {
  nlohmann::ordered_json document = header("list", kListVersion);
  document["generations"] = generations_json(result);
  document["warnings"] = result.warnings;
  document["error"] = error_json(result);
  return document;
}

std::string list_text(const RunResult& result) {
  std::string text;
  for (const auto& generation : result.generations) {
    text += generation.label + (generation.is_default ? " (default)" : "") + "\n";
    if (generation.status == GenerationOutcome::Status::no_xen) {
      text += "  no Xen entry: " + generation.reason + "\n";
    } else if (generation.status == GenerationOutcome::Status::skipped) {
      text += "  skipped: " + generation.reason + "\n";
    }
    if (generation.entry) {
      std::string state = generation.status == GenerationOutcome::Status::skipped
                              ? " (kept as it is)"
                          : generation.installed ? ""
                                                 : " (not written yet)";
      text += "  Xen entry: " + *generation.entry + state + "\n";
      for (const auto& file : generation.files) text += "  file:      " + file + "\n";
    }
    if (!generation.layout.empty()) {
      text += "  layout:    " + generation.layout + " (" + generation.layout_reason + ")\n";
    }
    if (!generation.xen_efi.empty()) text += "  xen.efi:   " + generation.xen_efi + "\n";
  }
  if (result.generations.empty()) text += "no generations found\n";
  return text;
}

nlohmann::ordered_json verify_json(const Verification& result) {
  nlohmann::ordered_json document = header("verify", kVerifyVersion);
  document["ok"] = result.ok();
  document["loader_conf"] = result.loader_conf_problems;
  document["entries"] = nlohmann::ordered_json::array();
  for (const auto& check : result.entries) {
    document["entries"].push_back({{"entry", check.entry}, {"problems", check.problems}});
  }
  return document;
}

std::string verify_text(const Verification& result) {
  std::string text;
  for (const auto& check : result.entries) {
    if (check.problems.empty()) text += "ok      " + check.entry + "\n";
    for (const auto& problem : check.problems) {
      text += "BROKEN  " + check.entry + ": " + problem + "\n";
    }
  }
  for (const auto& problem : result.loader_conf_problems) {
    text += "BROKEN  loader.conf: " + problem + "\n";
  }
  text += std::to_string(result.entries.size()) + " Xen entries checked, " +
          (result.ok() ? "all bootable" : "some NOT bootable") + "\n";
  return text;
}

nlohmann::ordered_json inspect_json(const InspectReport& report) {
  nlohmann::ordered_json document = header("inspect", kInspectVersion);
  for (const auto& [key, value] : report.json.items()) document[key] = value;
  return document;
}

}  // namespace xbb
