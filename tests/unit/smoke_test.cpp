#include <gtest/gtest.h>

#include "xbb/error.hpp"

TEST(Error, NamesWhereAndWhat) {
  xbb::Error e("/boot/x.json", "bad");
  EXPECT_STREQ(e.what(), "/boot/x.json: bad");
}
