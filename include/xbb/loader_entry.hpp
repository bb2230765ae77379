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
  // Minimum number of digits each number is printed with (zero-padded), as
  // read from the file name: "+03-1" has left_width 2, done_width 1. The
  // specification keeps the digit width when a boot loader decrements a
  // counter, so keep these when changing the numbers; 0 prints the plain number.
  unsigned left_width = 0;
  unsigned done_width = 0;

  // The tries the counter started with, left + done, saturated at the largest
  // unsigned: a sum that wrapped around would read as no tries left, which
  // systemd-boot takes for a bad entry.
  unsigned total() const;
};

// A loader entry file name, "<stem>[+LEFT[-DONE]].conf".
struct EntryName {
  std::string stem;
  std::optional<BootCounter> counter;

  // stem, counter, ".conf". The numbers are printed as stored, zero-padded to
  // their widths, so a parsed name gives back exactly the file name it came from.
  std::string filename() const;
};

// Parses a file name. nullopt when it does not end in ".conf", is longer than
// 255 characters, uses characters outside [A-Za-z0-9+_.-], or has nothing
// before the counter and ".conf". The counter is the text after the last '+'
// when it is digits, optionally followed by '-' and digits, and each number
// fits an unsigned; anything else there (e.g. "nixos-abc+x.conf") is no
// counter and stays part of the stem ("nixos-abc+x").
std::optional<EntryName> parse_entry_name(std::string_view filename);

// The keys of a Type #1 entry that we read or write. Absent keys stay empty
// (std::nullopt); an empty value ("machine-id" with nothing after it) counts
// as absent.
struct LoaderEntry {
  std::optional<std::string> title;
  std::optional<std::string> version;
  std::optional<std::string> machine_id;
  std::optional<std::string> sort_key;
  std::optional<std::string> kernel;   // the `linux` key: an ESP path such as /EFI/nixos/x.efi
  std::vector<std::string> initrds;    // every `initrd` line, in order
  std::optional<std::string> options;  // repeated `options` lines joined by one space
  std::optional<std::string> devicetree;
  std::optional<std::string> efi;
};

// Parses entry text: `key value` lines, `#` comments, blank lines, CRLF or LF,
// with or without a trailing newline. The key is the first word of the line
// (after optional spaces or tabs), the value the rest of the line after the
// spaces or tabs that follow the key, with trailing spaces and tabs removed.
// A key given again replaces the earlier value, except `initrd` (every line
// kept, in order) and `options` (joined by one space); a line with an empty
// value is ignored. Unknown keys are ignored. Throws Error naming `origin` and
// the line number for text that is not an entry: a NUL byte, a carriage
// return not ending a line, or a line whose first word is not a key
// ([A-Za-z0-9_-]+).
LoaderEntry parse_loader_entry(std::string_view text, const std::string& origin);

// Renders an entry: the comment line layout::kMarker, then title, version,
// efi, options, machine-id, sort-key (in that order, absent or empty keys
// omitted), one `key value` line each, LF-terminated. The other fields (linux, initrd, devicetree)
// are not written. Throws Error naming the key when a value contains a newline, carriage return or
// NUL.
std::string render_loader_entry(const LoaderEntry& entry);

}  // namespace xbb
