#include "posix_io.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "xbb/error.hpp"
#include "xbb/unique_fd.hpp"

namespace xbb {

void UniqueFd::reset() {
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
}

namespace posix {

std::string error_text(int error_number) { return std::strerror(error_number); }

std::string read_all(int fd, const std::string& shown) {
  std::string bytes;
  char buffer[65536];
  for (;;) {
    ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n > 0) {
      bytes.append(buffer, static_cast<std::size_t>(n));
    } else if (n == 0) {
      return bytes;
    } else if (errno != EINTR) {
      throw Error(shown, "cannot read: " + error_text(errno));
    }
  }
}

void write_all(int fd, const std::string& bytes, const std::string& shown) {
  std::size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n >= 0) {
      done += static_cast<std::size_t>(n);
    } else if (errno != EINTR) {
      throw Error(shown, "cannot write: " + error_text(errno));
    }
  }
}

std::string read_host_file(const std::filesystem::path& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY));
  if (!fd) throw Error(path.string(), "cannot open: " + error_text(errno));
  return read_all(fd.get(), path.string());
}

}  // namespace posix
}  // namespace xbb
