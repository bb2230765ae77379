#pragma once

#include <cstdint>
#include <span>

namespace xbb {

// Where bytes go as they are made, so that no one holds a whole image: a file
// being written, a digest, a buffer.
class ByteSink {
 public:
  virtual ~ByteSink() = default;
  // Takes the next bytes, in order.
  virtual void write(std::span<const std::uint8_t> bytes) = 0;
};

// A file being written from its start: bytes go at its end, and bytes already
// written may be written again (a PE image's CheckSum, which sums everything
// after it, is known only at the end).
class FileSink : public ByteSink {
 public:
  // Overwrites bytes already written: [offset, offset + size) must lie within
  // them.
  virtual void write_at(std::uint64_t offset, std::span<const std::uint8_t> bytes) = 0;
};

}  // namespace xbb
