// libFuzzer target for loader.conf. Retargeting with a function that declines
// every value must give back the input byte for byte; retargeting nixos-* to
// xen-* must keep the number of lines and make loader_conf_value report the
// retargeted default. Any exception, crash or sanitizer report is a bug.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "xbb/loader_conf.hpp"

namespace {

std::size_t count_lines(std::string_view text) {
  std::size_t lines = 0;
  for (char c : text) lines += c == '\n';
  return lines;
}

std::optional<std::string> nixos_to_xen(std::string_view value) {
  if (!value.starts_with("nixos-")) return std::nullopt;
  if (value.find('\r') != std::string_view::npos || value.find('\0') != std::string_view::npos) {
    return std::nullopt;
  }
  return "xen-" + std::string(value.substr(6));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);

  auto decline = [](std::string_view) -> std::optional<std::string> { return std::nullopt; };
  if (xbb::retarget_loader_conf(text, decline) != text) __builtin_trap();

  std::string retargeted = xbb::retarget_loader_conf(text, nixos_to_xen);
  if (count_lines(retargeted) != count_lines(text)) __builtin_trap();
  auto before = xbb::loader_conf_value(text, "default");
  auto after = xbb::loader_conf_value(retargeted, "default");
  if (before.has_value() != after.has_value()) __builtin_trap();
  if (before && nixos_to_xen(*before) && after != nixos_to_xen(*before)) __builtin_trap();
  return 0;
}
