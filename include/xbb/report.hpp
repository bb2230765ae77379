#pragma once

#include <ostream>
#include <string>

namespace xbb {

// How much a run says, as the NixOS option bootBuilderVerbosity names it.
enum class Verbosity { quiet, normal, info, debug };

// Parses "quiet", "default", "info" or "debug".
bool parse_verbosity(const std::string& text, Verbosity& out);

// Everything the program tells its user goes through here: progress and
// summaries on `out`, warnings and errors on `err`. Colour only when the
// stream is a terminal and NO_COLOR is unset. The daemon logs differently
// (watch.cpp overrides these).
class Reporter {
 public:
  Reporter(Verbosity verbosity, std::ostream& out, std::ostream& err, bool out_colour,
           bool err_colour);
  virtual ~Reporter() = default;

  Verbosity verbosity() const { return verbosity_; }
  bool at_least(Verbosity level) const { return verbosity_ >= level; }

  virtual void debug(const std::string& line);     // debug only
  virtual void info(const std::string& line);      // info and debug
  virtual void progress(const std::string& text);  // default and up, no newline
  virtual void line(const std::string& text);      // default and up
  virtual void change(char kind, const std::string& name,
                      const std::string& detail);  // info and up
  virtual void warning(const std::string& line);   // all but quiet, on err
  virtual void error(const std::string& line);     // always, on err

 private:
  std::string paint(const char* colour, const std::string& text, bool enabled) const;

  Verbosity verbosity_;
  std::ostream& out_;
  std::ostream& err_;
  bool out_colour_;
  bool err_colour_;
};

// Whether colour may be used on the file descriptor.
bool colour_allowed(int fd);

}  // namespace xbb
