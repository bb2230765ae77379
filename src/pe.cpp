#include "xbb/pe.hpp"
