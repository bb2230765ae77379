#include <algorithm>
#include <optional>
#include <set>
#include <string>
#include <variant>

#include "process.hpp"
#include "xbb/digest.hpp"
#include "xbb/error.hpp"
#include "xbb/esp.hpp"
#include "xbb/layout.hpp"
#include "xbb/signer.hpp"

namespace xbb {

namespace {

const std::string loader_conf_path(layout::kLoaderConf);

// Folders where a run writes, hence where an interrupted run may have left
// temporaries.
const std::vector<std::string> written_folders = {
    std::string(layout::kImageFolder), std::string(layout::kEntriesFolder),
    loader_conf_path.substr(0, loader_conf_path.rfind('/'))};

// A file the run writes, with the size it will have and the size of the
// file it replaces (if any), known before any is written.
struct PendingWrite {
  std::string path;
  const FileWrite* file = nullptr;  // nullptr: loader.conf
  std::uint64_t size = 0;
  std::optional<std::uint64_t> old_size;
  std::uint64_t input_size = 0;  // a signed image's unsigned input, on the ESP while it is signed
};

// What signing adds to an image at most: its certificate table (a PKCS#7
// signature with the certificate, about 2 KB for one RSA-2048 certificate),
// with room for long chains.
constexpr std::uint64_t kSignatureRoom = 64 << 10;

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

void remove_temporaries_in(Esp& esp, const std::string& folder) {
  for (const std::string& name : esp.list(folder)) {
    if (name.find(Esp::temporary_marker) != std::string::npos) esp.remove(folder + "/" + name);
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
  for (const std::string& folder : folders) remove_temporaries_in(esp, folder);
}

// The size of the regular file at `path` that writing there would replace:
// nullopt when there is none (a symlink is replaced, not read); a folder or
// device at a name the plan writes stops the run before anything is written.
std::optional<std::uint64_t> replaced_size(const Esp& esp, const std::string& path) {
  const EspItem item = esp.stat(path);
  switch (item.type) {
    case EspFileType::absent:
    case EspFileType::symlink:
      return std::nullopt;
    case EspFileType::regular:
      return item.stamp.size;
    case EspFileType::folder:
    case EspFileType::other:
      break;
  }
  throw Error((esp.root() / path).string(), "is not a regular file; refusing to replace it");
}

// What the plan writes, each with its size. An image that replaces a file of
// known digest is streamed through RecordHash here to compare (nothing
// written, nothing held): when equal it is not written. A signed image is always
// written: the bytes it replaces do not tell who signed them.
std::vector<PendingWrite> pending_writes(const Esp& esp, const Esp& loader_conf_esp,
                                         const Plan& plan, ImageMaker& maker, ApplyReport& report) {
  std::vector<PendingWrite> pending;
  for (const auto* files : {&plan.images, &plan.entries}) {
    for (const FileWrite& file : *files) {
      PendingWrite write{file.path, &file, 0, replaced_size(esp, file.path)};
      if (const auto* text = std::get_if<std::string>(&file.content)) {
        write.size = text->size();
      } else if (write.old_size && file.replaces_digest &&
                 std::get<ImageRecipe>(file.content).signer.empty()) {
        RecordHash digest;
        maker.stream(std::get<ImageRecipe>(file.content), digest);
        if (digest.hex() == *file.replaces_digest) {
          report.unchanged.push_back(file.path);
          continue;
        }
        write.size = digest.size();
      } else {
        write.size = maker.size(std::get<ImageRecipe>(file.content));
      }
      if (const auto* recipe = std::get_if<ImageRecipe>(&file.content);
          recipe && !recipe->signer.empty()) {
        write.input_size = write.size;
        write.size += kSignatureRoom;
      }
      pending.push_back(std::move(write));
    }
  }
  if (plan.loader_conf) {
    pending.push_back({loader_conf_path, nullptr, plan.loader_conf->size(),
                       replaced_size(loader_conf_esp, loader_conf_path)});
  }
  return pending;
}

// A file being written, and the record hash of what it holds, in step while
// no bytes are written again but the ones the hash can take again (the
// CheckSum field): complete() says whether they stayed in step.
class HashedFile : public FileSink {
 public:
  HashedFile(FileSink& file, RecordHash& hash) : file_(file), hash_(&hash) {}
  void write(std::span<const std::uint8_t> bytes) override {
    file_.write(bytes);
    if (hash_) hash_->write(bytes);
  }
  void write_at(std::uint64_t offset, std::span<const std::uint8_t> bytes) override {
    file_.write_at(offset, bytes);
    if (hash_ && !hash_->rewritable(offset, bytes.size())) hash_ = nullptr;
    if (hash_) hash_->write_at(offset, bytes);
  }
  bool complete() const { return hash_ != nullptr; }

 private:
  FileSink& file_;
  RecordHash* hash_;
};

// The bytes of a file being written, passed on to its digests as well.
class DigestedFile : public ByteSink {
 public:
  DigestedFile(ByteSink& file, RecordHash& hash, Sha256Sink& sha256)
      : file_(file), hash_(hash), sha256_(sha256) {}
  void write(std::span<const std::uint8_t> bytes) override {
    file_.write(bytes);
    hash_.write(bytes);
    sha256_.write(bytes);
  }

 private:
  ByteSink& file_;
  RecordHash& hash_;
  Sha256Sink& sha256_;
};

// Writes an image by streaming it into the temporary and through RecordHash
// at once: the CheckSum, written last, is the one field the hash takes again,
// so the file is not read back (it is when a maker writes other bytes again).
// A shared image's SHA-256, which its name holds, is of its final bytes: the
// maker's when it knows it already (ImageMaker::known_sha256), else the image
// is streamed in order (its CheckSum summed first, see ImageMaker::stream)
// through both digests as it is written, so that nothing is read back. A
// signed image is written so into a first temporary, signed from it into a
// second by a program, read back for its hash, and renamed into place.
WrittenImage write_image(Esp& esp, const std::string& path, const ImageRecipe& recipe,
                         ImageMaker& maker, const Signer* signer,
                         std::vector<std::string>& warnings) {
  WrittenImage written;
  const bool shared = layout::shared_image_digest(path.substr(path.rfind('/') + 1)).has_value();
  const auto make = [&](FileSink& file) {
    for (const std::string& warning : maker.write(recipe, file))
      warnings.push_back(path + ": " + warning);
  };
  const auto read_back = [](const EspFile& file, auto hash) {
    file.read_back(hash);
    return hash.hex();
  };
  std::optional<std::string> known;
  if (recipe.signer.empty() && shared) known = maker.known_sha256(recipe);
  if (recipe.signer.empty() && shared && !known) {
    written.stamp = esp.write_atomic(path, [&](EspFile& file) {
      RecordHash hash;
      Sha256Sink sha256;
      DigestedFile digested(file, hash, sha256);
      for (const std::string& warning : maker.stream(recipe, digested))
        warnings.push_back(path + ": " + warning);
      written.digest = hash.hex();
      written.sha256 = sha256.hex();
    });
    return written;
  }
  if (recipe.signer.empty()) {
    written.stamp = esp.write_atomic(path, [&](EspFile& file) {
      RecordHash hash;
      HashedFile hashed(file, hash);
      make(hashed);
      written.digest = hashed.complete() ? hash.hex() : read_back(file, RecordHash());
    });
    if (known) written.sha256 = std::move(*known);
    return written;
  }
  const auto sign = [&](EspFile& input, EspFile& output) {
    try {
      input.hand_to([&](int in) { output.hand_to([&](int out) { signer->sign(in, out); }); });
    } catch (const Error& e) {
      throw e.within((esp.root() / path).string());
    }
    written.digest = read_back(output, RecordHash());
  };
  written.stamp = esp.write_atomic_through(path, make, sign);
  return written;
}

// Every signed image in the plan is signed by `signer`.
void check_signer(const Esp& esp, const Plan& plan, const Signer* signer) {
  for (const FileWrite& file : plan.images) {
    const auto* recipe = std::get_if<ImageRecipe>(&file.content);
    if (!recipe || recipe->signer.empty()) continue;
    if (!signer || signer->identity() != recipe->signer)
      throw Error((esp.root() / file.path).string(),
                  "the plan signs this image with a key the run was not given");
  }
}

std::uint64_t round_up(std::uint64_t value, std::uint64_t unit) {
  return (value + unit - 1) / unit * unit;
}

// The space the writes need at their peak. Files are written one at a time:
// while one is written its old version (if any) still takes its space, and
// is freed by the rename; a signed image's unsigned input takes its space
// too until the signed image is in place. Sizes count in whole allocation
// units (clusters on FAT), plus one unit of margin for folder growth per
// file; removals, which come last, are not counted as freeing anything; a
// file written after the plan (`later`, the record) comes last. A file system that reports
// no size cannot be checked: the run goes on with a warning.
void check_free_space(const Esp& esp, std::vector<PendingWrite> pending,
                      const std::optional<LaterWrite>& later, std::vector<std::string>& warnings) {
  if (pending.empty()) return;
  if (later) {
    const EspItem there = esp.stat(later->path);
    pending.push_back({later->path, nullptr, later->size,
                       there.type == EspFileType::regular
                           ? std::optional<std::uint64_t>(there.stamp.size)
                           : std::nullopt});
  }
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
    const std::uint64_t size = round_up(file.size, unit) + unit;
    const std::uint64_t input = file.input_size ? round_up(file.input_size, unit) + unit : 0;
    needed = std::max(needed, in_use + size + input);
    const std::uint64_t freed = file.old_size ? round_up(*file.old_size, unit) + unit : 0;
    in_use = in_use + size > freed ? in_use + size - freed : 0;
  }
  const std::uint64_t have = *space.free_bytes;
  if (needed > have) {
    throw Error("not enough space on " + esp.root().string() + ": need " +
                    std::to_string(needed - have) + " bytes more (have " + std::to_string(have) +
                    ", need " + std::to_string(needed) + ")",
                ErrorKind::esp_full);
  }
}

}  // namespace

ApplyReport apply_plan(Esp& esp, const Plan& plan, ImageMaker& maker, const Signer* signer,
                       const std::optional<LaterWrite>& later, Esp* loader_conf_on) {
  Esp& loader_conf_esp = loader_conf_on ? *loader_conf_on : esp;
  check_paths(plan);
  check_signer(esp, plan, signer);
  remove_leftover_temporaries(esp, plan);
  if (&loader_conf_esp != &esp) remove_temporaries_in(loader_conf_esp, folder_of(loader_conf_path));

  ApplyReport report;
  std::vector<PendingWrite> pending = pending_writes(esp, loader_conf_esp, plan, maker, report);
  if (&loader_conf_esp == &esp) {
    check_free_space(esp, pending, later, report.warnings);
  } else {
    std::vector<PendingWrite> on_esp;
    if (!pending.empty() && !pending.back().file) on_esp.push_back(pending.back());
    std::vector<PendingWrite> on_boot(pending.begin(), pending.end() - on_esp.size());
    check_free_space(esp, on_boot, later, report.warnings);
    check_free_space(loader_conf_esp, on_esp, std::nullopt, report.warnings);
  }

  for (const PendingWrite& write : pending) {
    check_stop();  // a stop signal: between two files, as a crash would
    if (!write.file) {
      loader_conf_esp.write_atomic(write.path, *plan.loader_conf);
    } else if (const auto* text = std::get_if<std::string>(&write.file->content)) {
      report.texts[write.path] = esp.write_atomic(write.path, *text);
    } else {
      report.images[write.path] =
          write_image(esp, write.path, std::get<ImageRecipe>(write.file->content), maker, signer,
                      report.warnings);
    }
    report.written.push_back(write.path);
  }
  for (const std::string& path : plan.removals) {
    if (esp.type(path) == EspFileType::absent) continue;
    esp.remove(path);
    report.removed.push_back(path);
  }
  return report;
}

}  // namespace xbb
