// SPDX-License-Identifier: Apache-2.0
// The child of tests/posix/attack/inherit_test.cc: told which descriptors
// the parent had just created (as "<fd>:<st_dev>:<st_ino>"), it reports
// every one of them that it inherited across exec. Exit status 0: none, 1:
// some (named on stderr), 2: bad arguments. The device and inode numbers
// tell an inherited descriptor from one that the C runtime of this program
// opened itself at the same number before main.

#include <sys/stat.h>

#include <cstdio>
#include <cstdlib>

int main(int argc, char** argv) {
  int inherited = 0;
  for (int i = 1; i < argc; ++i) {
    int fd = -1;
    unsigned long long dev = 0;
    unsigned long long ino = 0;
    if (std::sscanf(argv[i], "%d:%llu:%llu", &fd, &dev, &ino) != 3) {
      std::fprintf(stderr, "inherit_report: bad argument \"%s\"\n", argv[i]);
      return 2;
    }
    struct stat st;
    if (fstat(fd, &st) == 0 &&
        static_cast<unsigned long long>(st.st_dev) == dev &&
        static_cast<unsigned long long>(st.st_ino) == ino) {
      std::fprintf(stderr, "inherit_report: descriptor %d was inherited\n", fd);
      ++inherited;
    }
  }
  return inherited == 0 ? 0 : 1;
}
