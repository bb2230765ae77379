#pragma once

#include <string>

// A shared library loaded when first needed (internal to src/): what only
// some commands use (libsystemd for the watch daemon, libcrypto for SHA-256)
// is not linked, so that the dynamic linker does not load it, and all it
// depends on, into every run (--version, an unchanged build).
namespace xbb {

class SharedLibrary {
 public:
  // Loads the library at `path` (`name` is for messages: "libsystemd"), or
  // throws Error naming both with dlerror()'s reason. Never unloaded: its
  // functions may be called until the process exits.
  SharedLibrary(std::string name, std::string path);
  SharedLibrary(const SharedLibrary&) = delete;
  SharedLibrary& operator=(const SharedLibrary&) = delete;

  // The function `symbol`, typed `Function` (XBB_LIBRARY_FUNCTION gives the
  // type of the declaration in the library's header), or throws Error when
  // the library has no such symbol.
  template <typename Function>
  Function* function(const char* symbol) const {
    return reinterpret_cast<Function*>(address(symbol));
  }

 private:
  void* address(const char* symbol) const;

  std::string name_;
  std::string path_;
  void* handle_;
};

}  // namespace xbb

// `library`'s function `symbol`, typed by its declaration in the library's
// own header (which must be included): a prototype that does not match the
// call cannot compile. Only the type is taken (decltype), so the library is
// not linked.
#define XBB_LIBRARY_FUNCTION(library, symbol) (library).function<decltype(::symbol)>(#symbol)
