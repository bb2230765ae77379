#include "xbb/report.hpp"

#include <unistd.h>

#include <cstdlib>

#include "xbb/error.hpp"

namespace xbb {

const char* kind_name(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::esp_missing:
      return "esp-missing";
    case ErrorKind::esp_full:
      return "esp-full";
    case ErrorKind::lock_timeout:
      return "lock-timeout";
    case ErrorKind::failed:
      break;
  }
  return "failed";
}

bool parse_verbosity(const std::string& text, Verbosity& out) {
  if (text == "quiet") {
    out = Verbosity::quiet;
  } else if (text == "default") {
    out = Verbosity::normal;
  } else if (text == "info") {
    out = Verbosity::info;
  } else if (text == "debug") {
    out = Verbosity::debug;
  } else {
    return false;
  }
  return true;
}

bool colour_allowed(int fd) {
  const char* no_colour = std::getenv("NO_COLOR");
  return isatty(fd) == 1 && (no_colour == nullptr || *no_colour == '\0');
}

Reporter::Reporter(Verbosity verbosity, std::ostream& out, std::ostream& err, bool out_colour,
                   bool err_colour)
    : verbosity_(verbosity),
      out_(out),
      err_(err),
      out_colour_(out_colour),
      err_colour_(err_colour) {}

std::string Reporter::paint(const char* colour, const std::string& text, bool enabled) const {
  if (!enabled) return text;
  return std::string("\033[") + colour + "m" + text + "\033[0m";
}

void Reporter::debug(const std::string& line) {
  if (at_least(Verbosity::debug)) out_ << paint("2", line, out_colour_) << '\n';
}

void Reporter::info(const std::string& line) {
  if (at_least(Verbosity::info)) out_ << line << '\n';
}

void Reporter::progress(const std::string& text) {
  if (at_least(Verbosity::normal)) out_ << text << std::flush;
}

void Reporter::line(const std::string& text) {
  if (at_least(Verbosity::normal)) out_ << text << '\n';
}

void Reporter::change(char kind, const std::string& name, const std::string& detail) {
  if (!at_least(Verbosity::info)) return;
  const char* colour = kind == '+' ? "32" : kind == '-' ? "31" : "33";
  std::string text = std::string(1, kind) + name;
  out_ << paint(colour, text, out_colour_) << (detail.empty() ? "" : " (" + detail + ")") << '\n';
}

void Reporter::warning(const std::string& line) {
  if (verbosity_ == Verbosity::quiet) return;
  err_ << paint("33", "warning:", err_colour_) << ' ' << line << '\n';
}

void Reporter::error(const std::string& line) {
  err_ << paint("31", "error:", err_colour_) << ' ' << line << '\n';
}

}  // namespace xbb
