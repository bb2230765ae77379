#include "xbb/xen_config.hpp"
