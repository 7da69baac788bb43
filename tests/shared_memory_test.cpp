// Tests for mp/shared_memory.hpp and the resource tracker, across real processes.
//
// Crash-cleanup tests run this very binary again as the *creator* (exec'd, so it starts
// its own resource tracker, as an unrelated program would): see SharedMemoryHelper below.
// Its stdout and stderr go to a pipe that the tracker inherits as its stderr, so reading
// that pipe to EOF means "the creator and its tracker are both gone" — no sleeps needed.
//
// Blocks made here are named "mptest-..." (except where the automatic "mp-" name is the
// point): the suite-wide leak check in test_main looks for new "mp-" entries in /dev/shm,
// and under a parallel ctest it would also see blocks that *other* tests still use.
#include <gtest/gtest.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "helpers/support.hpp"
#include "helpers/fd_exhaustion.hpp"
#include "mp/process.hpp"
#include "mp/shared_memory.hpp"
#include "mp/synchronize.hpp"

using namespace std::chrono_literals;

namespace {

/// A name outside the "mp-" namespace that the suite-wide leak check watches.
std::string test_name() {
  static int n = 0;
  return "mptest-" + std::to_string(::getpid()) + "-" + std::to_string(++n);
}

bool shm_exists(const std::string& name) { return ::access(("/dev/shm/" + name).c_str(), F_OK) == 0; }

unsigned shm_mode(const std::string& name) {
  struct stat st{};
  if (::stat(("/dev/shm/" + name).c_str(), &st) != 0) return 0;
  return st.st_mode & 0777;
}

/// This test binary re-run in creator mode `mode`, output captured.
class Creator {
 public:
  explicit Creator(const std::string& mode) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error("pipe2");
    out_ = fds[0];
    std::string env = "MP_SHM_CREATOR=" + mode;
    std::string env_name = "MP_SHM_NAME=" + test_name();
    proc_ = mp::Process([env, env_name, w = fds[1]] {
      ::dup2(w, 1);
      ::dup2(w, 2);
      char* argv[] = {const_cast<char*>("shared_memory_test"),
                      const_cast<char*>("--gtest_filter=SharedMemoryHelper.DISABLED_Creator"),
                      const_cast<char*>("--gtest_also_run_disabled_tests"), nullptr};
      char* envp[] = {const_cast<char*>(env.c_str()), const_cast<char*>(env_name.c_str()), nullptr};
      ::execve("/proc/self/exe", argv, envp);
      ::_exit(127);
    });
    proc_.start();
    ::close(fds[1]);
  }
  ~Creator() {
    if (proc_.is_alive()) proc_.kill();
    proc_.join();
    ::close(out_);
  }

  /// Reads until the helper prints "name=<n> tracker=<pid>" (safety timeout 60 s).
  bool read_announcement() {
    while (output_.find("tracker=") == std::string::npos ||
           output_.find('\n', output_.find("tracker=")) == std::string::npos)
      if (!read_some()) return false;
    auto n = output_.find("name=") + 5;
    name = output_.substr(n, output_.find(' ', n) - n);
    tracker = std::atoi(output_.c_str() + output_.find("tracker=") + 8);
    return !name.empty();
  }
  /// Reads to EOF: the creator and its tracker (which holds the pipe as stderr) have exited.
  bool read_to_eof() {
    while (read_some()) {
    }
    return eof_;
  }
  void kill() { proc_.kill(); }
  const std::string& output() const { return output_; }

  std::string name;
  pid_t tracker = 0;

 private:
  bool read_some() {
    pollfd p{out_, POLLIN, 0};
    if (::poll(&p, 1, 60'000) != 1) return false;  // safety net only
    char buf[4096];
    ssize_t n = ::read(out_, buf, sizeof buf);
    if (n <= 0) {
      eof_ = n == 0;
      return false;
    }
    output_.append(buf, static_cast<std::size_t>(n));
    return true;
  }
  mp::Process proc_;
  int out_ = -1;
  bool eof_ = false;
  std::string output_;
};

}  // namespace

// The creator side of the crash tests; does nothing unless run by Creator above.
TEST(SharedMemoryHelper, DISABLED_Creator) {
  const char* mode = std::getenv("MP_SHM_CREATOR");
  if (!mode) GTEST_SKIP() << "only run as a helper by the crash-cleanup tests";
  std::string m = mode;
  mp::SharedMemory shm({.name = std::getenv("MP_SHM_NAME"), .create = true, .size = 4096, .track = m != "untracked-hang"});
  std::printf("name=%s tracker=%d\n", shm.name().c_str(), static_cast<int>(mp::internal::resource_tracker_pid()));
  std::fflush(stdout);
  if (m == "unlink") shm.unlink();
  if (m == "hang" || m == "untracked-hang")
    for (;;) ::pause();
  ::_exit(0);  // skip the suite's own leak check: leaving the block behind is the point
}

TEST(SharedMemory, AutomaticNamesAreRandomWithTheMpPrefix) {
  mp::SharedMemory a({.create = true, .size = 1});
  mp::SharedMemory b({.create = true, .size = 1});
  bool existed = shm_exists(a.name());
  a.unlink();  // at once: see the file comment
  b.unlink();
  EXPECT_TRUE(existed);
  EXPECT_EQ(a.name().rfind("mp-", 0), 0u) << a.name();
  EXPECT_EQ(a.name().size(), 3u + 16u) << a.name();
  EXPECT_NE(a.name(), b.name());
}

TEST(SharedMemory, CreateAttachFromAChildAndUnlink) {
  mp::SharedMemory shm({.name = test_name(), .create = true, .size = 1000});
  EXPECT_EQ(shm.size(), 1000u);
  ASSERT_EQ(shm.buf().size(), 1000u);
  EXPECT_TRUE(shm_exists(shm.name()));
  std::memcpy(shm.buf().data(), "hello", 6);

  mp::Process p([name = shm.name()] {
    mp::SharedMemory other(name);
    if (other.size() != 1000 || std::strcmp(reinterpret_cast<char*>(other.buf().data()), "hello") != 0) mp::exit(2);
    std::memcpy(other.buf().data() + 100, "world", 6);
    other.close();
  });
  p.start();
  ASSERT_TRUE(p.join(60s));
  EXPECT_EQ(p.exitcode(), 0);
  EXPECT_STREQ(reinterpret_cast<char*>(shm.buf().data() + 100), "world");
  EXPECT_TRUE(shm_exists(shm.name())) << "a process that only attached must not remove the block";

  shm.unlink();
  EXPECT_FALSE(shm_exists(shm.name()));
  EXPECT_STREQ(reinterpret_cast<char*>(shm.buf().data()), "hello") << "the mapping outlives the name";
  EXPECT_THROW(shm.unlink(), mp::OSError);
}

TEST(SharedMemory, ForkedChildUsesTheInheritedMapping) {
  mp::SharedMemory shm({.name = test_name(), .create = true, .size = 64});
  mp::Process p([&] { shm.buf()[0] = std::byte{42}; });
  p.start();
  ASSERT_TRUE(p.join(60s));
  EXPECT_EQ(shm.buf()[0], std::byte{42});
  shm.unlink();
}

TEST(SharedMemory, CreatedWithMode0600EvenUnderAPermissiveUmask) {
  mode_t old = ::umask(0);
  mp::SharedMemory shm({.name = test_name(), .create = true, .size = 16});
  ::umask(old);
  EXPECT_EQ(shm_mode(shm.name()), 0600u);
  shm.unlink();
}

TEST(SharedMemory, NamedBlocks) {
  std::string name = test_name();
  mp::SharedMemory a({.name = name, .create = true, .size = 10});
  EXPECT_EQ(a.name(), name);
  mp::SharedMemory b("/" + name);  // the leading slash is optional
  EXPECT_EQ(b.name(), name);
  EXPECT_EQ(b.size(), 10u);
  try {
    mp::SharedMemory dup({.name = name, .create = true, .size = 10});
    ADD_FAILURE() << "creating an existing name must fail";
  } catch (const mp::OSError& e) {
    EXPECT_EQ(e.code(), std::errc::file_exists);
  }
  a.unlink();
}

TEST(SharedMemory, AttachingAMissingBlockThrowsENOENT) {
  try {
    mp::SharedMemory shm("mp-does-not-exist-" + std::to_string(::getpid()));
    ADD_FAILURE() << "attach must fail";
  } catch (const mp::OSError& e) {
    EXPECT_EQ(e.code(), std::errc::no_such_file_or_directory);
  }
}

TEST(SharedMemory, RejectsZeroSizeAndBadNames) {
  EXPECT_THROW(mp::SharedMemory({.create = true, .size = 0}), mp::ValueError);
  EXPECT_THROW(mp::SharedMemory("a/b"), mp::ValueError);
  EXPECT_THROW(mp::SharedMemory(""), mp::ValueError);
  EXPECT_THROW(mp::SharedMemory(std::string(300, 'x')), mp::ValueError);
}

TEST(SharedMemory, CloseIsIdempotentAndMoveTransfersTheView) {
  mp::SharedMemory a({.name = test_name(), .create = true, .size = 32});
  std::string name = a.name();
  mp::SharedMemory b = std::move(a);
  EXPECT_EQ(b.name(), name);
  EXPECT_EQ(b.buf().size(), 32u);
  EXPECT_TRUE(a.buf().empty());  // NOLINT(bugprone-use-after-move): documented state
  b.close();
  b.close();
  EXPECT_TRUE(b.buf().empty());
  b.unlink();  // unlink works on a closed handle
  EXPECT_FALSE(shm_exists(name));
}

TEST(SharedMemory, BlockCreatedByAChildOutlivesItWhileTheFamilyLives) {
  ASSERT_TRUE(mp::internal::ensure_resource_tracker());  // the child shares this tracker
  struct Name {
    char s[64];
  };
  mp::SharedMemory names({.name = test_name(), .create = true, .size = sizeof(Name)});
  std::string child_block = test_name();
  mp::Process p([&] {
    mp::SharedMemory shm({.name = child_block, .create = true, .size = 8});
    std::strcpy(reinterpret_cast<Name*>(names.buf().data())->s, shm.name().c_str());
    // exits without unlink(): the family (this test) is still alive
  });
  p.start();
  ASSERT_TRUE(p.join(60s));
  std::string name = reinterpret_cast<Name*>(names.buf().data())->s;
  ASSERT_FALSE(name.empty());
  EXPECT_TRUE(shm_exists(name));
  mp::SharedMemory attached(name);
  attached.unlink();  // also unregisters it: no warning at our exit
  names.unlink();
}

TEST(SharedMemoryTracker, CreatorKilledBySigkillLeavesNoBlock) {
  Creator c("hang");
  ASSERT_TRUE(c.read_announcement()) << c.output();
  EXPECT_GT(c.tracker, 0);
  EXPECT_TRUE(shm_exists(c.name));
  EXPECT_EQ(shm_mode(c.name), 0600u);
  c.kill();
  ASSERT_TRUE(c.read_to_eof()) << "the tracker did not exit within the safety timeout";
  EXPECT_FALSE(shm_exists(c.name)) << c.output();
  EXPECT_NE(c.output().find("removed leaked shared memory block '" + c.name + "'"), std::string::npos) << c.output();
}

TEST(SharedMemoryTracker, CreatorExitingWithoutUnlinkIsCleanedUp) {
  Creator c("exit");
  ASSERT_TRUE(c.read_announcement()) << c.output();
  ASSERT_TRUE(c.read_to_eof());
  EXPECT_FALSE(shm_exists(c.name)) << c.output();
  EXPECT_NE(c.output().find("removed leaked shared memory block '" + c.name + "'"), std::string::npos) << c.output();
}

TEST(SharedMemoryTracker, NoWarningWhenTheCreatorUnlinks) {
  Creator c("unlink");
  ASSERT_TRUE(c.read_announcement()) << c.output();
  ASSERT_TRUE(c.read_to_eof());
  EXPECT_FALSE(shm_exists(c.name));
  EXPECT_EQ(c.output().find("resource_tracker"), std::string::npos) << c.output();
}

// Issue 20: the tracker unlinked by name, so program A's tracker removed the block that
// program B (this test) had created under a name A's block once had, and B's unlink()
// then failed with ENOENT. A's tracker must leave B's block alone.
TEST(SharedMemoryTracker, ANameReusedByAnotherProgramIsNotUnlinkedByTheFirstOnesTracker) {
  Creator a("hang");
  ASSERT_TRUE(a.read_announcement()) << a.output();
  {
    mp::SharedMemory theirs(a.name);
    theirs.unlink();  // B removes A's block...
  }
  mp::SharedMemory ours({.name = a.name, .create = true, .size = 4096});  // ...and reuses its name
  a.kill();
  ASSERT_TRUE(a.read_to_eof()) << "A's tracker did not exit within the safety timeout";
  EXPECT_TRUE(shm_exists(a.name)) << "A's tracker removed B's block: " << a.output();
  EXPECT_EQ(a.output().find("removed leaked"), std::string::npos) << a.output();
  EXPECT_NO_THROW(ours.unlink());
}

TEST(SharedMemoryTracker, UntrackedBlocksOutliveTheirCreator) {
  Creator c("untracked-hang");
  ASSERT_TRUE(c.read_announcement()) << c.output();
  EXPECT_EQ(c.tracker, 0) << "no tracked block, no tracker";
  c.kill();
  ASSERT_TRUE(c.read_to_eof());
  EXPECT_TRUE(shm_exists(c.name)) << "track = false: the block is the caller's to unlink";
  mp::SharedMemory(c.name).unlink();
}

// Issue 20: a constructor that fails partway leaves no process, descriptor or file behind.
// Every descriptor it takes is made to fail once (tests/helpers/fd_exhaustion.hpp).
// With one name throughout, a block left by a failed attempt would make every later one
// fail (EEXIST), and the run would never succeed.
TEST(SharedMemory, CreateOutOfDescriptorsAtAnyStepLeavesNothingBehind) {
  if (mp_test::kSanitizerNeedsDescriptors) GTEST_SKIP() << mp_test::kSanitizerSkipReason;
  for (bool track : {true, false}) {
    const std::string name = test_name() + (track ? "-t" : "-u");
    auto r = mp_test::construct_out_of_descriptors([&] {
      mp::SharedMemory shm({.name = name, .create = true, .size = 4096, .track = track});
      shm.unlink();
    });
    EXPECT_EQ(r.problem, "") << "track=" << track;
    EXPECT_TRUE(r.succeeded) << "track=" << track;
    EXPECT_GE(r.failures, 1) << "track=" << track;
    EXPECT_FALSE(shm_exists(name));
  }
}
