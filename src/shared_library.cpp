#include "shared_library.hpp"

#include <dlfcn.h>

#include <utility>

#include "xbb/error.hpp"

namespace xbb {

namespace {

std::string dl_reason() {
  const char* reason = dlerror();
  return reason ? reason : "no reason given";
}

}  // namespace

// RTLD_NOW: a library that lacks a function it needs fails here, with the
// reason, rather than at the first call. RTLD_LOCAL: its symbols are only
// reached through function().
SharedLibrary::SharedLibrary(std::string name, std::string path)
    : name_(std::move(name)),
      path_(std::move(path)),
      handle_(dlopen(path_.c_str(), RTLD_NOW | RTLD_LOCAL)) {
  if (!handle_) throw Error(name_, "cannot load " + path_ + ": " + dl_reason());
}

void* SharedLibrary::address(const char* symbol) const {
  dlerror();
  void* address = dlsym(handle_, symbol);
  if (!address)
    throw Error(name_, "no function " + std::string(symbol) + " in " + path_ + ": " + dl_reason());
  return address;
}

}  // namespace xbb
