// Errors keep their kind when a caller adds where they happened, and a value
// computed without one says why (issue 15, item 20).
#include "xbb/error.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace xbb {
namespace {

TEST(Error, WithinAddsWhereAndKeepsTheKind) {
  for (const ErrorKind kind :
       {ErrorKind::esp_full, ErrorKind::lock_timeout, ErrorKind::esp_missing, ErrorKind::failed}) {
    const Error wrapped = Error("12 MiB needed, 3 MiB free", kind).within("/boot/EFI/xen/a.efi");
    EXPECT_EQ(wrapped.kind(), kind) << kind_name(kind);
    EXPECT_STREQ(wrapped.what(), "/boot/EFI/xen/a.efi: 12 MiB needed, 3 MiB free");
  }
}

TEST(Error, ValueOrReasonGivesTheValueOrSaysWhy) {
  std::vector<std::string> reasons;
  const auto note = [&](const std::string& why) { reasons.push_back(why); };
  EXPECT_EQ(value_or_reason([] { return 7; }, note), 7);
  EXPECT_TRUE(reasons.empty());
  EXPECT_EQ(value_or_reason([]() -> int { throw Error("x.conf", "line 2: no key"); }, note),
            std::nullopt);
  EXPECT_EQ(reasons, std::vector<std::string>{"x.conf: line 2: no key"});
}

}  // namespace
}  // namespace xbb
