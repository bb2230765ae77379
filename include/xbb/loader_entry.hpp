#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace xbb {

// Boot counting suffix of a Boot Loader Specification file name: +LEFT[-DONE].
struct BootCounter {
  unsigned left = 0;
  std::optional<unsigned> done;
};

// A loader entry file name, "<stem>[+LEFT[-DONE]].conf".
struct EntryName {
  std::string stem;
  std::optional<BootCounter> counter;

  std::string filename() const;  // stem, counter, ".conf"
};

// Parses a file name. nullopt when it does not end in ".conf", is empty, or
// uses characters outside [A-Za-z0-9+_.-].
std::optional<EntryName> parse_entry_name(std::string_view filename);

// The keys of a Type #1 entry that we read or write. Absent keys stay empty
// (std::nullopt); an empty value ("machine-id" with nothing after it) counts
// as absent.
struct LoaderEntry {
  std::optional<std::string> title;
  std::optional<std::string> version;
  std::optional<std::string> machine_id;
  std::optional<std::string> sort_key;
  std::optional<std::string> kernel;  // the `linux` key: an ESP path such as /EFI/nixos/x.efi
  std::vector<std::string> initrds;   // every `initrd` line, in order
  std::optional<std::string> options; // repeated `options` lines joined by one space
  std::optional<std::string> devicetree;
  std::optional<std::string> efi;
};

// Parses entry text: `key value` lines, `#` comments, blank lines, CRLF or LF,
// with or without a trailing newline. Unknown keys are ignored. Throws Error
// naming `origin` for text that is not an entry (NUL bytes, a line without a
// key).
LoaderEntry parse_loader_entry(std::string_view text, const std::string& origin);

// Renders an entry: title, version, efi, options, machine-id, sort-key (in
// that order, absent keys omitted), one `key value` line each, LF-terminated.
// Throws Error when a value contains a newline, carriage return or NUL.
std::string render_loader_entry(const LoaderEntry& entry);

}  // namespace xbb
