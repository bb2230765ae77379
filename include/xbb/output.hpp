#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "xbb/builder.hpp"
#include "xbb/inspect.hpp"
#include "xbb/verify.hpp"

// What `plan`, `list`, `verify` and `inspect` print: text for people, and the
// JSON documents of --json for programs. Each document starts with its
// schema's name and version, {"schema": "xen-boot-builder/<command>",
// "version": N, ...}; the schemas are man/json/<command>.schema.json,
// installed with the man page. A version changes only when a field is
// removed or changes meaning; fields may be added within a version.
namespace xbb {

// `plan --json`: the changes, the paths it would write and remove, the
// warnings, each generation's outcome, the default failure and the error.
nlohmann::ordered_json plan_json(const RunResult& result);

// `list --json`: each generation's outcome, the warnings and the error.
nlohmann::ordered_json list_json(const RunResult& result);

// `list`: each generation with its Xen entry and files, or why it has none.
std::string list_text(const RunResult& result);

// `verify --json` and `verify`.
nlohmann::ordered_json verify_json(const Verification& result);
std::string verify_text(const Verification& result);

// `inspect --json`: the report's facts under the header.
nlohmann::ordered_json inspect_json(const InspectReport& report);

}  // namespace xbb
