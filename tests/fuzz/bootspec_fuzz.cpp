// libFuzzer target: parse_bootspec on arbitrary bytes. xbb::Error is the
// expected refusal; any other exception, crash or sanitizer report is a bug.
// A document that parses must render into a Xen configuration whose lines are
// exactly the ones the renderer writes: no value may inject another line.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "xbb/bootspec.hpp"
#include "xbb/error.hpp"
#include "xbb/xen_config.hpp"

namespace {

std::size_t count_lines(const std::string& text) {
  std::size_t lines = 0;
  for (char c : text) lines += c == '\n';
  return lines;
}

// The same configuration with every value a plain word: it renders into the
// lines the renderer writes for this shape (with or without options= and
// ramdisk=), whatever fixed lines the format has.
xbb::XenConfig with_plain_values(xbb::XenConfig config) {
  for (std::string& param : config.xen_params) param = "p";
  config.kernel = "k";
  for (std::string& param : config.kernel_params) param = "p";
  if (config.ramdisk) config.ramdisk = "r";
  return config;
}

void check_renders_on_its_own_lines(const xbb::Bootspec& spec) {
  if (!spec.xen) return;
  xbb::XenConfig config;
  config.section = "nixos";
  config.xen_params = spec.xen->params;
  config.kernel = spec.kernel;
  config.kernel_params = spec.kernel_params;
  config.ramdisk = spec.initrd;
  std::string text = xbb::render_xen_config(config);
  if (count_lines(text) != count_lines(xbb::render_xen_config(with_plain_values(config)))) {
    __builtin_trap();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    xbb::Bootspec spec = xbb::parse_bootspec(text, "fuzz/boot.json");
    check_renders_on_its_own_lines(spec);
    for (const auto& [name, specialisation] : spec.specialisations) {
      check_renders_on_its_own_lines(specialisation);
    }
  } catch (const xbb::Error&) {
  }
  return 0;
}
