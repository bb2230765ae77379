#include "xbb/loader_entry.hpp"
