#include "xbb/memo.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "limits.hpp"
#include "posix_io.hpp"
#include "xbb/digest.hpp"
#include "xbb/error.hpp"
#include "xbb/layout.hpp"

namespace xbb {
namespace {

// Values fed to one hash, each with its length first, so that no two
// sequences of values give the same bytes; gathered and hashed in pieces of
// 64 KiB (a scan feeds thousands of small values).
class Fingerprint {
 public:
  Fingerprint() { pending_.reserve(kPiece); }
  Fingerprint& text(std::string_view bytes) {
    number(bytes.size());
    if (pending_.size() + bytes.size() > kPiece) flush();
    if (bytes.size() > kPiece) {
      hash_.update({reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size()});
    } else {
      pending_.append(bytes);
    }
    return *this;
  }
  Fingerprint& number(std::uint64_t value) {
    char bytes[sizeof value];
    std::memcpy(bytes, &value, sizeof value);
    if (pending_.size() + sizeof value > kPiece) flush();
    pending_.append(bytes, sizeof value);
    return *this;
  }
  Fingerprint& stamp(const FileStamp& stamp) {
    return number(stamp.size).number(static_cast<std::uint64_t>(stamp.mtime_ns));
  }
  std::string hex() {
    flush();
    return hash_.hex();
  }

 private:
  static constexpr std::size_t kPiece = 64 << 10;
  void flush() {
    hash_.update({reinterpret_cast<const std::uint8_t*>(pending_.data()), pending_.size()});
    pending_.clear();
  }
  std::string pending_;
  Xxh3 hash_;
};

bool is_named(const std::string& name, std::string_view prefix) {
  return name.starts_with(prefix) && name.ends_with(".conf");
}

}  // namespace

bool memo_applies(const BuildOptions& options, const Partitions& partitions,
                  const Reporter& reporter) {
  return !options.dry_run && !options.rebuild && !reporter.at_least(Verbosity::debug) &&
         options.source == Source::entries && !options.sign_key && !options.lanzaboote &&
         !layout::embeds_kernel(layout_request(options)) && !partitions.separate() &&
         options.extra_esps.empty();
}

Scan scan_inputs(const Esp& boot, const Esp& loader_conf_on, const BuildOptions& options) {
  Fingerprint sources;
  Fingerprint print;
  print.text(XBB_VERSION).number(kRecordVersion);
  // The program itself: another build of the same version may decide
  // otherwise (a Nix store path names each build, a rebuild changes the
  // file's stamp). Without /proc a run keeps and uses no memo.
  constexpr const char* self = "/proc/self/exe";
  char program[4096];
  const ssize_t length = ::readlink(self, program, sizeof program);
  struct stat st {};
  if (length <= 0 || static_cast<std::size_t>(length) == sizeof program || ::stat(self, &st) != 0)
    throw Error(self, "cannot read: " + posix::error_text(errno));
  print.text({program, static_cast<std::size_t>(length)}).stamp(posix::stamp_of(st));
  // Every option a run that may keep a memo can be given, but the verbosity
  // below debug (which changes no decision) and --helper-timeout (no helper
  // runs).
  print.text(options.esp.string()).text(options.root.string());
  print.text(options.xbootldr ? options.xbootldr->string() : "");
  print.number(options.retarget_default ? 1 : 0).number(options.keep_debug_sections ? 1 : 0);
  print.number(options.layout ? 1 + static_cast<std::uint64_t>(*options.layout) : 0);
  print.text(options.ucode ? options.ucode->string() : "");

  const std::string entries(layout::kEntriesFolder);
  for (const EspItem& item : boot.list_all(entries, Esp::Stamps::without)) {
    const bool source = is_named(item.name, "nixos-");
    Fingerprint& into = source ? sources : print;
    into.text(item.name).number(static_cast<std::uint64_t>(item.type));
    if (item.type != EspFileType::regular) continue;
    const std::string path = entries + "/" + item.name;
    if (source) {
      const std::optional<std::string> text = boot.read_listed(path, limits::kLoaderTextBytes);
      sources.number(text ? 1 : 0).text(text.value_or(""));
    } else if (is_named(item.name, "xen-")) {
      print.stamp(boot.stat(path).stamp);
    }
  }
  const std::string_view record_name =
      std::string_view(layout::kStateFile).substr(layout::kImageFolder.size() + 1);
  for (const EspItem& item : boot.list_all(std::string(layout::kImageFolder))) {
    if (item.name == record_name) continue;
    print.text(item.name).number(static_cast<std::uint64_t>(item.type)).stamp(item.stamp);
  }
  for (const EspItem& item :
       boot.list_all(std::string(layout::kLegacyImageFolder), Esp::Stamps::without)) {
    print.text(item.name).number(static_cast<std::uint64_t>(item.type));
  }
  if (options.retarget_default) {
    try {
      const auto text =
          loader_conf_on.read(std::string(layout::kLoaderConf), limits::kLoaderTextBytes);
      print.number(text ? 1 : 0).text(text.value_or(""));
    } catch (const Error& e) {
      print.number(2).text(e.what());
    }
  }
  return {sources.hex(), print.hex()};
}

MemoSight look_again(const Esp& boot, const Memo& memo) {
  MemoSight sight;
  for (const auto& path : memo.host_files) {
    struct stat st {};
    const bool regular = ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
    sight.host_files[path] = regular ? std::optional(posix::stamp_of(st)) : std::nullopt;
  }
  for (const auto& path : memo.esp_files) {
    const std::optional<EspFileType> type =
        value_or_reason([&] { return boot.type(path); },
                        [](const std::string&) {});  // a name the ESP cannot hold: no file there
    sight.esp_files[path] = type == EspFileType::regular;
  }
  return sight;
}

ImageSight look_at_images(const Esp& boot, const Memo& memo) {
  ImageSight images;
  for (const auto& [path, config_size] : memo.images) {
    const std::optional<ImageRead> read = read_image_check(boot, path, config_size);
    auto& seen = images[path];
    if (!read || !read->efi_application || (read->has_config && !read->config)) continue;
    seen.emplace(read->stamp, read->config.value_or(""));
  }
  return images;
}

std::uint64_t record_rest_size(const Record& record) {
  std::uint64_t size = 0;
  render_record_rest(record, [&size](std::string_view piece) { size += piece.size(); });
  return size;
}

std::optional<RecordMemo> read_record_memo(const Esp& boot) {
  constexpr std::size_t kPiece = 32 << 10;  // the memo line of 110 entries is about 17 KB
  std::optional<RecordMemo> found;
  boot.read_pieces(
      std::string(layout::kStateFile), [&](const FileStamp& stamp, const Esp::ReadAt& read_at) {
        if (stamp.size > limits::kRecordTextBytes) return;
        std::string head;
        while (!holds_memo_line(head) && head.size() < stamp.size) {
          const std::string piece = read_at(head.size(), kPiece);
          if (piece.empty()) break;
          head += piece;
        }
        if (head.size() > stamp.size) return;  // grew as it was read
        MemoRead read = read_memo(head);
        if (!read.memo) return;
        found = RecordMemo{std::move(*read.memo), stamp.size - (head.size() - read.after.size())};
      });
  return found;
}

std::string memo_inputs(const Scan& scan, const MemoSight& sight, std::uint64_t record_rest_size) {
  Fingerprint print;
  print.text(scan.sources).text(scan.rest);
  for (const auto& [path, stamp] : sight.host_files) {
    print.text(path).number(stamp ? 1 : 0).stamp(stamp.value_or(FileStamp{}));
  }
  for (const auto& [path, regular] : sight.esp_files) print.text(path).number(regular ? 1 : 0);
  print.number(record_rest_size);
  return print.hex();
}

std::string images_fingerprint(const ImageSight& images) {
  Fingerprint print;
  for (const auto& [path, seen] : images) {
    print.text(path).number(seen ? 1 : 0);
    if (seen) print.stamp(seen->first).text(seen->second);
  }
  return print.hex();
}

}  // namespace xbb
