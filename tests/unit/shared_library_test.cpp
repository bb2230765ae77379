// Libraries only some commands need are loaded when first needed (issue 18,
// startup): a library that cannot be loaded, or lacks a function, is an Error
// that names it and says why.
#include "shared_library.hpp"

#include <gtest/gtest.h>

#include <cstring>
#include <string>

#include "xbb/error.hpp"

namespace xbb {
namespace {

TEST(SharedLibrary, MissingLibraryIsAnErrorNamingItAndTheReason) {
  try {
    SharedLibrary("libexample", "/nonexistent/libexample.so.1");
    FAIL() << "loaded a library that does not exist";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::failed);
    const std::string message = e.what();
    EXPECT_EQ(message.rfind("libexample: cannot load /nonexistent/libexample.so.1: ", 0), 0)
        << message;
    EXPECT_NE(message.find("No such file or directory"), std::string::npos) << message;
  }
}

TEST(SharedLibrary, FunctionIsTypedByItsDeclarationAndCallable) {
  const SharedLibrary library("libc", "libc.so.6");
  const auto length = XBB_LIBRARY_FUNCTION(library, strlen);
  EXPECT_EQ(length("seven c"), 7u);
}

TEST(SharedLibrary, MissingFunctionIsAnErrorNamingIt) {
  const SharedLibrary library("libc", "libc.so.6");
  try {
    library.function<void()>("xbb_no_such_function");
    FAIL() << "found a function libc does not have";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::failed);
    EXPECT_EQ(
        std::string(e.what()).rfind("libc: no function xbb_no_such_function in libc.so.6: ", 0), 0)
        << e.what();
  }
}

}  // namespace
}  // namespace xbb
