#include <algorithm>
#include <optional>
#include <set>
#include <string>
#include <variant>

#include "limits.hpp"
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
  std::optional<std::uint64_t> old_size;  // the file it replaces, if any
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

std::string bytes_of(const FileWrite& file, const ImageBuilder& build,
                     std::vector<std::string>& warnings) {
  if (const auto* text = std::get_if<std::string>(&file.content)) return *text;
  BuiltImage image = build(std::get<ImageRecipe>(file.content));
  for (const std::string& warning : image.warnings) warnings.push_back(file.path + ": " + warning);
  return std::move(image.bytes);
}

// The regular file at `path` that writing there would replace: nullopt when
// there is none (a symlink is replaced, not read); a folder or device at a
// name the plan writes stops the run before anything is written.
std::optional<std::string> replaced_file(const Esp& esp, const std::string& path) {
  switch (esp.type(path)) {
    case EspFileType::absent:
    case EspFileType::symlink:
      return std::nullopt;
    case EspFileType::regular:
      return esp.read(path, limits::kXenImageBytes + limits::kKernelBytes + limits::kInitrdBytes);
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
    std::optional<std::string> old = replaced_file(esp, path);
    if (old == bytes) {
      report.unchanged.push_back(path);
      return;
    }
    std::optional<std::uint64_t> old_size;
    if (old) old_size = old->size();
    pending.push_back({path, std::move(bytes), old_size});
  };
  for (const auto* files : {&plan.images, &plan.entries}) {
    for (const FileWrite& file : *files)
      consider(file.path, bytes_of(file, build, report.warnings));
  }
  if (plan.loader_conf) consider(loader_conf_path, *plan.loader_conf);
  return pending;
}

std::uint64_t round_up(std::uint64_t value, std::uint64_t unit) {
  return (value + unit - 1) / unit * unit;
}

// The space the writes need at their peak. Files are written one at a time:
// while one is written its old version (if any) still takes its space, and
// is freed by the rename. Sizes count in whole allocation units (clusters on
// FAT), plus one unit of margin for folder growth per file; removals, which
// come last, are not counted as freeing anything. A file system that reports
// no size cannot be checked: the run goes on with a warning.
void check_free_space(const Esp& esp, const std::vector<PendingWrite>& pending,
                      std::vector<std::string>& warnings) {
  if (pending.empty()) return;
  const EspSpace space = esp.space();
  if (!space.free_bytes) {
    warnings.push_back(esp.root().string() +
                       ": the file system reports no size (f_blocks 0); free space not checked");
    return;
  }
  const std::uint64_t unit = space.allocation_unit;
  std::uint64_t in_use = 0;  // space taken so far by the writes done (net of what they freed)
  std::uint64_t needed = 0;
  for (const PendingWrite& file : pending) {
    const std::uint64_t size = round_up(file.bytes.size(), unit) + unit;
    needed = std::max(needed, in_use + size);
    const std::uint64_t freed = file.old_size ? round_up(*file.old_size, unit) + unit : 0;
    in_use = in_use + size > freed ? in_use + size - freed : 0;
  }
  const std::uint64_t have = *space.free_bytes;
  if (needed > have) {
    throw Error("not enough space on " + esp.root().string() + ": need " +
                std::to_string(needed - have) + " bytes more (have " + std::to_string(have) +
                ", need " + std::to_string(needed) + ")");
  }
}

}  // namespace

ApplyReport apply_plan(Esp& esp, const Plan& plan, const ImageBuilder& build) {
  check_paths(plan);
  remove_leftover_temporaries(esp, plan);

  ApplyReport report;
  std::vector<PendingWrite> pending = changed_files(esp, plan, build, report);
  check_free_space(esp, pending, report.warnings);

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
