#include "xbb/generation.hpp"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <deque>
#include <map>
#include <regex>
#include <sstream>

#include "bootspec_document.hpp"
#include "limits.hpp"
#include "posix_io.hpp"
#include "text.hpp"
#include "xbb/boot_menu.hpp"
#include "xbb/error.hpp"
#include "xbb/esp.hpp"
#include "xbb/layout.hpp"

namespace fs = std::filesystem;

namespace xbb {
namespace {

constexpr int kMaxSymlinks = 40;

constexpr std::string_view kStore = "/nix/store/";

std::deque<std::string> split_path(const std::string& path) {
  std::deque<std::string> parts;
  for (std::string_view part : text::split(path, '/')) {
    if (!part.empty() && part != ".") parts.emplace_back(part);
  }
  return parts;
}

template <typename Parts>
fs::path joined(const fs::path& root, const Parts& parts) {
  fs::path result = root;
  for (const auto& part : parts) result /= part;
  return result;
}

// The toplevel of a generation from its entry's options line: the last
// init= (Linux, like any kernel parameter, takes the last one), which must be
// "/nix/store/<toplevel>/init", as NixOS writes it:
// "init=/nix/store/x-nixos-system/init" gives "/nix/store/x-nixos-system".
std::string toplevel_from_options(const std::string& options, const std::string& origin) {
  std::optional<std::string> init;
  std::string_view rest = options;
  while (!rest.empty()) {
    auto [word, after] = text::split_first_word(rest);
    if (word.starts_with("init=")) init = std::string(word.substr(5));
    rest = after;
  }
  if (!init) throw Error(origin, "options line has no init=<toplevel>/init");
  const std::string shown = "init=" + text::printable(*init);
  if (!init->starts_with(kStore)) throw Error(origin, shown + " is outside " + std::string(kStore));
  const auto components = text::split(std::string_view(*init).substr(1), '/');
  for (std::string_view component : components) {
    if (component.empty() || component == "." || component == "..") {
      throw Error(origin, shown + " has an empty, '.' or '..' component");
    }
  }
  if (components.size() != 4 || components.back() != "init") {
    throw Error(origin, shown + " is not " + std::string(kStore) + "<toplevel>/init");
  }
  return init->substr(0, init->size() - 5);
}

std::optional<unsigned> number_after(const std::string& text, const std::regex& pattern) {
  std::smatch match;
  if (!std::regex_search(text, match, pattern)) return std::nullopt;
  return static_cast<unsigned>(std::stoul(match[1].str()));
}

// The generation number: from a generation-named stem, else from the entry's
// version line ("Generation 42 NixOS ...").
std::optional<unsigned> generation_number(const std::string& rest, const LoaderEntry& entry) {
  static const std::regex in_name("(?:^|-)generation-([0-9]{1,9})(?:-|$)");
  static const std::regex in_version("^Generation ([0-9]{1,9})\\b");
  if (auto n = number_after(rest, in_name)) return n;
  if (entry.version) return number_after(*entry.version, in_version);
  return std::nullopt;
}

// Host paths of what the bootspec names, resolved under the root.
void resolve_files(Generation& generation, HostPaths& paths) {
  const Bootspec& spec = *generation.bootspec;
  if (spec.xen) generation.xen_efi.path = paths.resolve(spec.xen->efi_path);
  generation.kernel_file.path = paths.resolve(spec.kernel);
  if (spec.initrd) generation.initrd_file = HostFile{paths.resolve(*spec.initrd), {}, {}};
}

// The bootspec of `toplevel`, read with its size limit.
Bootspec read_bootspec(HostPaths& paths, const std::string& toplevel) {
  fs::path file = paths.resolve(toplevel + "/boot.json");
  return parse_bootspec(posix::read_host_file(file, limits::kBootspecBytes, "bootspec"),
                        file.string());
}

// A source entry's specialisations have source entries of their own: its
// generation keeps none of their bootspecs (in a bootspec with one, about
// half of what it holds).
void drop_specialisations(Bootspec& spec) {
  spec.specialisations = decltype(spec.specialisations){};
  spec.broken_specialisations = decltype(spec.broken_specialisations){};
}

// The known bootspec when its file is still there with the stamp recorded.
const KnownBootspec* still_known(const KnownBootspecs& known, const std::string& toplevel) {
  auto found = known.find(toplevel);
  if (found == known.end()) return nullptr;
  struct stat st {};
  if (::stat(found->second.file.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return nullptr;
  return posix::stamp_of(st) == found->second.stamp ? &found->second : nullptr;
}

// What a generation learnt of its bootspec, held by pointer (see Generation::known).
std::shared_ptr<const std::pair<std::string, KnownBootspec>> known_bootspec(
    const std::string& toplevel, KnownBootspec known) {
  return std::make_shared<const std::pair<std::string, KnownBootspec>>(toplevel, std::move(known));
}

void load_bootspec(Generation& generation, HostPaths& paths, const std::string& toplevel,
                   const KnownBootspecs& known) {
  if (const KnownBootspec* kept = still_known(known, toplevel)) {
    generation.bootspec = *kept->spec;
    drop_specialisations(*generation.bootspec);
    if (kept->spec->xen) generation.xen_efi.path = kept->xen_efi;
    generation.kernel_file.path = kept->kernel;
    if (kept->initrd) generation.initrd_file = HostFile{*kept->initrd, {}, {}};
    generation.known = known_bootspec(toplevel, KnownBootspec{kept->file,
                                                              kept->stamp,
                                                              kept->document,
                                                              {},
                                                              kept->xen_efi,
                                                              kept->kernel,
                                                              kept->initrd});
    return;
  }
  try {
    const fs::path file = paths.resolve(toplevel + "/boot.json");
    FileStamp stamp;
    const UniqueFd fd = posix::open_host_file(file, limits::kBootspecBytes, "bootspec", stamp);
    BootspecDocument read = parse_bootspec_document(
        posix::read_all(fd.get(), file.string(), limits::kBootspecBytes, "bootspec"),
        file.string());
    generation.bootspec = std::move(read.spec);
    drop_specialisations(*generation.bootspec);
    resolve_files(generation, paths);
    std::optional<std::string> initrd;
    if (generation.initrd_file) initrd = generation.initrd_file->path;
    generation.known = known_bootspec(
        toplevel, KnownBootspec{file.string(),
                                stamp,
                                std::make_shared<const std::string>(std::move(read.document)),
                                {},
                                generation.xen_efi.path,
                                generation.kernel_file.path,
                                initrd});
  } catch (const Error& e) {
    generation.bootspec.reset();
    generation.known.reset();
    generation.problem = e.what();
  }
}

// Orders names as people count: "generation-2" before "generation-10", and
// a generation before its specialisations.
bool natural_less(const std::string& a, const std::string& b) {
  std::size_t i = 0, j = 0;
  while (i < a.size() && j < b.size()) {
    if (std::isdigit(static_cast<unsigned char>(a[i])) &&
        std::isdigit(static_cast<unsigned char>(b[j]))) {
      std::size_t i_end = a.find_first_not_of("0123456789", i);
      std::size_t j_end = b.find_first_not_of("0123456789", j);
      i_end = i_end == std::string::npos ? a.size() : i_end;
      j_end = j_end == std::string::npos ? b.size() : j_end;
      std::string x = a.substr(i, i_end - i), y = b.substr(j, j_end - j);
      x.erase(0, std::min(x.find_first_not_of('0'), x.size()));
      y.erase(0, std::min(y.find_first_not_of('0'), y.size()));
      if (x.size() != y.size()) return x.size() < y.size();
      if (x != y) return x < y;
      i = i_end;
      j = j_end;
    } else {
      if (a[i] != b[j]) return a[i] < b[j];
      ++i;
      ++j;
    }
  }
  return a.size() - i < b.size() - j;
}

void sort_generations(std::vector<Generation>& generations) {
  std::stable_sort(
      generations.begin(), generations.end(),
      [](const Generation& a, const Generation& b) { return natural_less(a.rest, b.rest); });
}

}  // namespace

fs::path host_path(const fs::path& root, const std::string& path) {
  if (path.empty() || path.front() != '/') throw Error(path, "not an absolute path");
  if (root.empty() || root == "/") return path;
  std::deque<std::string> todo = split_path(path);
  std::vector<std::string> done;
  int links = 0;
  while (!todo.empty()) {
    std::string part = std::move(todo.front());
    todo.pop_front();
    if (part == "..") {
      if (!done.empty()) done.pop_back();
      continue;
    }
    fs::path candidate = joined(root, done) / part;
    std::error_code ec;
    if (!fs::is_symlink(fs::symlink_status(candidate, ec))) {
      done.push_back(std::move(part));
      continue;
    }
    if (++links > kMaxSymlinks) {
      throw Error(joined(root, done).string(),
                  "too many levels of symbolic links resolving " + path);
    }
    std::string target = fs::read_symlink(candidate, ec).string();
    if (ec) throw Error(candidate.string(), "cannot read link: " + ec.message());
    if (!target.empty() && target.front() == '/') done.clear();
    auto parts = split_path(target);
    todo.insert(todo.begin(), parts.begin(), parts.end());
  }
  return joined(root, done);
}

HostPaths::HostPaths(fs::path root, Lookup lookup) : root_(std::move(root)) {
  if (lookup == Lookup::openat2_first && !root_.empty() && root_ != "/")
    root_fd_ = ::open(root_.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
}

HostPaths::~HostPaths() {
  if (root_fd_ >= 0) ::close(root_fd_);
}

fs::path HostPaths::resolve(const std::string& path) {
  if (auto found = known_.find(path); found != known_.end()) return found->second;
  std::optional<fs::path> resolved = without_symlinks(path);
  if (!resolved) resolved = host_path(root_, path);
  return known_.emplace(path, std::move(*resolved)).first->second;
}

// The path joined to the root when one openat2 call finds a file there with
// no symlink and no ".." on the way, and the root is not "/": nothing to
// follow, host_path would give the same. nullopt otherwise. A kernel or
// filter without the call (ENOSYS, EPERM) is not asked again.
std::optional<fs::path> HostPaths::without_symlinks(const std::string& path) {
  if (root_fd_ < 0 || path.empty() || path.front() != '/') return std::nullopt;
  const std::deque<std::string> parts = split_path(path);
  if (std::find(parts.begin(), parts.end(), "..") != parts.end()) return std::nullopt;
  open_how how{};
  how.flags = O_PATH | O_CLOEXEC;
  how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS;
  const long fd = ::syscall(SYS_openat2, root_fd_, path.c_str(), &how, sizeof how);
  if (fd < 0) {
    if (errno == ENOSYS || errno == EPERM) {
      ::close(root_fd_);
      root_fd_ = -1;
    }
    return std::nullopt;
  }
  ::close(static_cast<int>(fd));
  return joined(root_, parts);
}

std::vector<Generation> generations_from_entries(const Esp& esp, const fs::path& root,
                                                 const KnownBootspecs& known) {
  std::vector<Generation> generations;
  HostPaths paths(root);
  const std::string folder(layout::kEntriesFolder);
  for (const auto& [name, type, stamp] : esp.list_all(folder, Esp::Stamps::without)) {
    if (!name.starts_with("nixos-") || !name.ends_with(".conf")) continue;
    Generation generation;
    generation.source = folder + "/" + name;
    auto parsed = parse_entry_name(name);
    generation.rest = parsed ? parsed->stem.substr(6) : name.substr(6, name.size() - 11);
    try {
      if (type == EspFileType::folder || type == EspFileType::other) {
        throw Error(generation.source, "is a folder or special file, not an entry");
      }
      if (!parsed) {
        throw Error(generation.source,
                    "not an entry name systemd-boot's installer writes (characters outside "
                    "[A-Za-z0-9+_.-], or longer than 255 bytes)");
      }
      generation.counter = parsed->counter;
      auto text = esp.read(generation.source, limits::kLoaderTextBytes);
      if (!text) continue;
      generation.entry = parse_loader_entry(*text, generation.source);
      generation.number = generation_number(generation.rest, generation.entry);
      load_bootspec(generation, paths,
                    toplevel_from_options(generation.entry.options.value_or(""), generation.source),
                    known);
    } catch (const Error& e) {
      generation.bootspec.reset();
      generation.problem = e.what();
    }
    generations.push_back(std::move(generation));
  }
  sort_generations(generations);
  return generations;
}

namespace {

// One profile link and its specialisations, with entries made up the way
// systemd-boot's NixOS installer would title them.
void add_profile_generation(std::vector<Generation>& out, HostPaths& paths,
                            const std::string& profile, unsigned number, const std::string& link) {
  Generation generation;
  generation.rest = (profile.empty() ? "" : profile + "-") + "generation-" + std::to_string(number);
  generation.source = link;
  generation.number = number;
  std::string title = "NixOS" + (profile.empty() ? std::string() : " [" + profile + "]");
  try {
    generation.bootspec = read_bootspec(paths, link);
  } catch (const Error& e) {
    generation.problem = e.what();
  }
  auto describe = [&](Generation& g, const std::string& entry_title) {
    g.entry.title = entry_title;
    if (!g.bootspec) return;
    g.entry.version = "Generation " + std::to_string(number) + " " + g.bootspec->label;
    g.entry.sort_key = g.bootspec->sort_key;
    try {
      resolve_files(g, paths);
    } catch (const Error& e) {
      g.bootspec.reset();
      g.problem = e.what();
    }
  };
  std::vector<std::pair<std::string, Bootspec>> specialisations;
  if (generation.bootspec) specialisations = generation.bootspec->specialisations;
  describe(generation, title);
  out.push_back(generation);
  for (auto& [name, spec] : specialisations) {
    Generation child = generation;
    child.rest += "-specialisation-" + name;
    child.bootspec = spec;
    child.problem.clear();
    describe(child, title + " (" + name + ")");
    out.push_back(std::move(child));
  }
}

}  // namespace

std::vector<Generation> generations_from_profiles(const fs::path& root) {
  static const std::regex system_link("system-([0-9]{1,9})-link");
  static const std::regex profile_link("([A-Za-z0-9_.+-]+)-([0-9]{1,9})-link");
  std::vector<Generation> generations;
  HostPaths paths(root);
  auto scan = [&](const std::string& dir, bool profiles) {
    std::error_code ec;
    fs::path host = paths.resolve(dir);
    std::vector<std::string> names;
    for (const auto& item : fs::directory_iterator(host, ec))
      names.push_back(item.path().filename());
    std::sort(names.begin(), names.end());
    for (const auto& name : names) {
      std::smatch m;
      if (!profiles && std::regex_match(name, m, system_link)) {
        add_profile_generation(generations, paths, "", std::stoul(m[1]), dir + "/" + name);
      } else if (profiles && std::regex_match(name, m, profile_link)) {
        add_profile_generation(generations, paths, m[1], std::stoul(m[2]), dir + "/" + name);
      }
    }
  };
  scan("/nix/var/nix/profiles", false);
  scan("/nix/var/nix/profiles/system-profiles", true);
  sort_generations(generations);
  return generations;
}

namespace {

// The generation as an entry of systemd-boot's menu: its source entry, or
// for a profile link the entry systemd-boot's installer would write.
MenuEntry as_menu_entry(const Generation& generation) {
  auto name = parse_entry_name(fs::path(generation.source).filename().string());
  if (!name) name = EntryName{"nixos-" + generation.rest, generation.counter};
  return menu_entry(*name, generation.entry);
}

std::string folded(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

}  // namespace

std::set<std::string> files_named_on_the_esp(const std::vector<Generation>& generations) {
  std::set<std::string> named;
  const auto add = [&named](const std::string& path) {
    if (path.size() >= 2 && path.front() == '/') named.insert(path.substr(1));
  };
  for (const auto& generation : generations) {
    for (const auto& path : generation.entry.initrds) add(path);
    if (generation.entry.kernel) add(*generation.entry.kernel);
  }
  return named;
}

std::vector<std::string> keep_one_per_xen_name(std::vector<Generation>& generations) {
  std::map<std::string, std::size_t> first;  // folded rest -> index of the one kept so far
  std::vector<bool> dropped(generations.size(), false);
  std::vector<std::pair<std::size_t, std::size_t>> pairs;  // (dropped, kept)
  for (std::size_t i = 0; i < generations.size(); ++i) {
    auto [kept, fresh] = first.emplace(folded(generations[i].rest), i);
    if (fresh) continue;
    const Generation& a = generations[i];
    const Generation& b = generations[kept->second];
    const MenuEntry menu_a = as_menu_entry(a), menu_b = as_menu_entry(b);
    const bool a_first =
        boots_before(menu_a, menu_b) || (!boots_before(menu_b, menu_a) && a.source < b.source);
    if (a_first) {
      for (auto& pair : pairs) {
        if (pair.second == kept->second) pair.second = i;
      }
      pairs.emplace_back(kept->second, i);
      kept->second = i;
    } else {
      pairs.emplace_back(i, kept->second);
    }
  }
  std::vector<std::string> warnings;
  for (const auto& [lost, kept] : pairs) {
    dropped[lost] = true;
    warnings.push_back(generations[lost].source + " and " + generations[kept].source +
                       " give the same Xen entry name xen-" + generations[kept].rest +
                       "; skipped " + generations[lost].source + ", kept " +
                       generations[kept].source + " (systemd-boot lists it first)");
  }
  std::vector<Generation> kept;
  kept.reserve(generations.size() - pairs.size());
  for (std::size_t i = 0; i < generations.size(); ++i) {
    if (!dropped[i]) kept.push_back(std::move(generations[i]));
  }
  generations = std::move(kept);
  return warnings;
}

}  // namespace xbb
