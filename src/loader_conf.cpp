#include "xbb/loader_conf.hpp"
