#include <set>
#include <string>
#include <variant>

#include "xbb/error.hpp"
#include "xbb/esp.hpp"

namespace xbb {

namespace {

constexpr const char* loader_conf_path = "loader/loader.conf";

// Folders where a run writes, hence where an interrupted run may have left
// temporaries.
const std::vector<std::string> written_folders = {"EFI/xen", "loader/entries", "loader"};

// A file whose new bytes differ from what is on the ESP, held from the
// comparison until it is written.
struct PendingWrite {
  std::string path;
  std::string bytes;
};

std::string folder_of(const std::string& path) {
  std::size_t slash = path.rfind('/');
  return slash == std::string::npos ? std::string() : path.substr(0, slash);
}

// Every path is checked before anything is touched, so that a bad path late in
// the plan cannot stop a run half way.
void check_paths(const Plan& plan) {
  std::set<std::string> written;
  for (const auto* files : {&plan.images, &plan.entries}) {
    for (const FileWrite& file : *files) {
      split_esp_path(file.path);
      written.insert(file.path);
    }
  }
  for (const std::string& path : plan.removals) {
    split_esp_path(path);
    if (written.count(path) != 0) throw Error(path, "the plan both writes and removes this path");
  }
}

void remove_leftover_temporaries(Esp& esp, const Plan& plan) {
  std::set<std::string> folders(written_folders.begin(), written_folders.end());
  for (const auto* files : {&plan.images, &plan.entries}) {
    for (const FileWrite& file : *files) {
      std::string folder = folder_of(file.path);
      if (!folder.empty()) folders.insert(folder);
    }
  }
  for (const std::string& folder : folders) {
    for (const std::string& name : esp.list(folder)) {
      if (name.find(Esp::temporary_marker) != std::string::npos) esp.remove(folder + "/" + name);
    }
  }
}

std::string bytes_of(const FileWrite& file, const ImageBuilder& build, std::vector<std::string>& warnings) {
  if (const auto* text = std::get_if<std::string>(&file.content)) return *text;
  BuiltImage image = build(std::get<ImageRecipe>(file.content));
  for (const std::string& warning : image.warnings) warnings.push_back(file.path + ": " + warning);
  return std::move(image.bytes);
}

// Whether writing `bytes` to `path` would change the ESP. A symlink is always
// replaced; a folder or device at a name the plan writes stops the run before
// anything is written.
bool differs(const Esp& esp, const std::string& path, const std::string& bytes) {
  switch (esp.type(path)) {
    case EspFileType::absent:
    case EspFileType::symlink:
      return true;
    case EspFileType::regular:
      return esp.read(path) != bytes;
    case EspFileType::folder:
    case EspFileType::other:
      break;
  }
  throw Error((esp.root() / path).string(), "is not a regular file; refusing to replace it");
}

std::vector<PendingWrite> changed_files(const Esp& esp, const Plan& plan, const ImageBuilder& build,
                                        ApplyReport& report) {
  std::vector<PendingWrite> pending;
  auto consider = [&](const std::string& path, std::string bytes) {
    if (differs(esp, path, bytes)) {
      pending.push_back({path, std::move(bytes)});
    } else {
      report.unchanged.push_back(path);
    }
  };
  for (const auto* files : {&plan.images, &plan.entries}) {
    for (const FileWrite& file : *files) consider(file.path, bytes_of(file, build, report.warnings));
  }
  if (plan.loader_conf) consider(loader_conf_path, *plan.loader_conf);
  return pending;
}

std::uint64_t round_up(std::uint64_t value, std::uint64_t unit) { return (value + unit - 1) / unit * unit; }

// Each file needs its size rounded up to whole allocation units (clusters on
// FAT), plus one unit of margin for folder growth. The old file still occupies
// its space until the rename, so nothing is subtracted for it.
void check_free_space(const Esp& esp, const std::vector<PendingWrite>& pending) {
  const std::uint64_t unit = esp.allocation_unit();
  std::uint64_t needed = 0;
  for (const PendingWrite& file : pending) needed += round_up(file.bytes.size(), unit) + unit;
  const std::uint64_t have = esp.free_bytes();
  if (needed > have) {
    throw Error("not enough space on " + esp.root().string() + ": need " + std::to_string(needed - have) +
                " bytes more (have " + std::to_string(have) + ", need " + std::to_string(needed) + ")");
  }
}

}  // namespace

ApplyReport apply_plan(Esp& esp, const Plan& plan, const ImageBuilder& build) {
  check_paths(plan);
  remove_leftover_temporaries(esp, plan);

  ApplyReport report;
  std::vector<PendingWrite> pending = changed_files(esp, plan, build, report);
  check_free_space(esp, pending);

  for (PendingWrite& file : pending) {
    esp.write_atomic(file.path, file.bytes);
    report.written.push_back(file.path);
    std::string().swap(file.bytes);
  }
  for (const std::string& path : plan.removals) {
    if (esp.type(path) == EspFileType::absent) continue;
    esp.remove(path);
    report.removed.push_back(path);
  }
  return report;
}

}  // namespace xbb
