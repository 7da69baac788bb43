// gtest main shared by every test binary. After all tests it checks the resources the
// suite promises not to leak: no zombie children of this process, no /dev/shm entries
// created by mp (prefix "mp-") that were not there before, and no leaked file descriptors.
#include <dirent.h>
#include <gtest/gtest.h>

#include <fstream>
#include <set>
#include <string>

#include "helpers/support.hpp"

namespace {

std::set<std::string> shm_entries() {
  std::set<std::string> out;
  if (DIR* d = opendir("/dev/shm")) {
    while (dirent* e = readdir(d))
      if (std::string(e->d_name).rfind("mp-", 0) == 0) out.insert(e->d_name);
    closedir(d);
  }
  return out;
}

class ResourceCheck : public ::testing::Environment {
 public:
  void SetUp() override {
    shm_before_ = shm_entries();
    fds_before_ = mp_test::open_fd_count();
  }
  void TearDown() override {
    EXPECT_EQ(mp_test::zombie_children(), 0) << "zombie children left behind by the suite";
    for (auto& e : shm_entries())
      EXPECT_TRUE(shm_before_.count(e)) << "leaked shared-memory segment /dev/shm/" << e;
    EXPECT_LE(mp_test::open_fd_count(), fds_before_ + 16)
        << "file descriptors leaked (before " << fds_before_ << ", after " << mp_test::open_fd_count() << ")";
  }

 private:
  std::set<std::string> shm_before_;
  int fds_before_ = 0;
};

}  // namespace

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  ::testing::AddGlobalTestEnvironment(new ResourceCheck);
  return RUN_ALL_TESTS();
}
