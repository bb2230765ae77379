#include <iostream>

int main() {
  std::cout << "xen-boot-builder " XBB_VERSION "\n";
  return 0;
}
