#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>

// Hexadecimal text for messages and reports (internal to src/).
namespace xbb {

// "0x1f"
inline std::string hex(std::uint64_t value) {
  char text[32];
  std::snprintf(text, sizeof text, "0x%llx", static_cast<unsigned long long>(value));
  return text;
}

// "0a1b2c": the bytes in order, two lowercase digits each.
inline std::string hex_bytes(const std::uint8_t* bytes, std::size_t size) {
  std::string text;
  for (std::size_t i = 0; i < size; ++i) {
    char pair[3];
    std::snprintf(pair, sizeof pair, "%02x", bytes[i]);
    text += pair;
  }
  return text;
}

}  // namespace xbb
