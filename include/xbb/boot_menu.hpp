#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "xbb/loader_entry.hpp"

// How systemd-boot orders its menu and picks the entry it boots by default,
// so that the planner can tell which generation a `default` glob selects,
// before and after a run.
namespace xbb {

// The version comparison of the UAPI version format specification, which
// systemd-boot uses to order entries (strverscmp_improved): negative when `a`
// is older than `b`, zero when equivalent, positive when newer.
int compare_versions(std::string_view a, std::string_view b);

// One Type #1 entry as systemd-boot sees it.
struct MenuEntry {
  std::string file_name;  // "nixos-abc+3-1.conf"
  std::optional<BootCounter> counter;
  std::optional<std::string> sort_key;
  std::optional<std::string> machine_id;
  std::optional<std::string> version;
};

MenuEntry menu_entry(const EntryName& name, const LoaderEntry& entry);

// systemd-boot's menu order: entries with no tries left last; then entries
// with a sort-key before those without; among those with one, by sort-key,
// machine-id, and version (newest first); then by file name (newest version
// first); then, for counted entries, more tries left first and fewer tries
// done first.
bool boots_before(const MenuEntry& a, const MenuEntry& b);

// Whether a `default` or `preferred` value of loader.conf (a file name or a
// glob, compared case-insensitively as systemd-boot does) selects the entry:
// it matches the file name, or the file name without its boot counter.
bool selects(std::string_view pattern, const MenuEntry& entry);

// The index of the entry systemd-boot would pick for `pattern`: the first
// match in menu order. nullopt when nothing matches.
std::optional<std::size_t> pick(std::string_view pattern, const std::vector<MenuEntry>& entries);

// The index of the first entry in menu order (what systemd-boot boots when
// loader.conf names no entry); nullopt for no entries.
std::optional<std::size_t> first_in_menu(const std::vector<MenuEntry>& entries);

}  // namespace xbb
