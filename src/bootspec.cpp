#include "xbb/bootspec.hpp"
