// gtest main shared by every test binary. After all tests it checks the resources the
// suite promises not to leak: no zombie children of this process and no leaked file
// descriptors. Leaked /dev/shm segments are checked once for the whole suite, after every
// test binary has ended (tests/resources.cmake), since test binaries run in parallel.
#include <gtest/gtest.h>

#include "helpers/support.hpp"

namespace {

class ResourceCheck : public ::testing::Environment {
 public:
  void SetUp() override { fds_before_ = mp_test::open_fd_count(); }
  void TearDown() override {
    EXPECT_EQ(mp_test::zombie_children(), 0) << "zombie children left behind by the suite";
    EXPECT_LE(mp_test::open_fd_count(), fds_before_ + 16)
        << "file descriptors leaked (before " << fds_before_ << ", after " << mp_test::open_fd_count() << ")";
  }

 private:
  int fds_before_ = 0;
};

}  // namespace

#if defined(__SANITIZE_THREAD__)
// The suite's TSan suppressions (tests/tsan.supp, which says why each is there) also when a
// test binary is run by hand, outside the tsan test preset that passes them in TSAN_OPTIONS.
extern "C" __attribute__((used, visibility("default"))) const char* __tsan_default_options() {
  return "suppressions=" MP_SOURCE_DIR "/tests/tsan.supp";
}
#endif

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  ::testing::AddGlobalTestEnvironment(new ResourceCheck);
  return RUN_ALL_TESTS();
}
