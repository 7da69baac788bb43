// Tests for mp/connection.hpp: Pipe, Connection framing and errors, wait, descriptor
// passing, Listener/Client with CPython's handshake — across real processes, and against
// real Python 3 peers (multiprocessing.connection) for the wire format.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <map>
#include <numeric>
#include <random>
#include <thread>

#include "helpers/fd_exhaustion.hpp"
#include "helpers/python_peer.hpp"
#include "helpers/support.hpp"
#include "mp/connection.hpp"
#include "mp/process.hpp"

using namespace std::chrono_literals;
using mp::connection::Address;
using mp::connection::Client;
using mp::connection::Listener;

extern char** environ;

namespace {

struct Order {
  std::string item;
  int qty = 0;
  std::vector<double> prices;
  template <class A>
  void serialize(A& ar) {
    ar(item, qty, prices);
  }
  bool operator==(const Order&) const = default;
};

// Writes raw bytes to a descriptor, bypassing the framing, to forge bad frames.
void raw_write(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    ssize_t n = ::write(fd, bytes.data(), bytes.size());
    ASSERT_GT(n, 0);
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
}

std::string pattern(std::size_t n, unsigned seed) {
  std::string s(n, '\0');
  std::uint32_t x = seed * 2654435761u + 1;
  for (auto& c : s) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    c = static_cast<char>(x);
  }
  return s;
}

void expect_exit(mp::Process& p, int code) {
  ASSERT_TRUE(p.join(60s)) << "child did not finish";
  EXPECT_EQ(p.exitcode(), code);
}

std::string tmp_path(const std::string& name) {
  return "/tmp/mp-test-" + std::to_string(::getpid()) + "-" + name;
}

using mp_test::PythonPeer;

bool have_python() { return mp_test::run("python3 -c 'import multiprocessing.connection'").exit_code == 0; }

}  // namespace

// --- Pipe and Connection -----------------------------------------------------------

TEST(Pipe, DuplexRoundTripsTypedValuesAcrossProcesses) {
  auto [a, b] = mp::Pipe();
  mp::Process child([&] {
    a.close();
    b.send(b.recv<int>() * 2);
    auto s = b.recv<std::string>();
    b.send(s + " back");
    auto o = b.recv<Order>();
    o.qty += 1;
    b.send(o);
    auto m = b.recv<std::map<std::string, int>>();
    b.send(m.size());
  });
  child.start();
  b.close();
  a.send(21);
  EXPECT_EQ(a.recv<int>(), 42);
  a.send(std::string("there"));
  EXPECT_EQ(a.recv<std::string>(), "there back");
  Order o{"tea", 2, {1.5, 2.5}};
  a.send(o);
  o.qty = 3;
  EXPECT_EQ(a.recv<Order>(), o);
  a.send(std::map<std::string, int>{{"x", 1}, {"y", 2}});
  EXPECT_EQ(a.recv<std::size_t>(), 2u);
  expect_exit(child, 0);
}

TEST(Pipe, UnixSocketDuplexRoundTrips) {
  auto [a, b] = mp::Pipe(true, {.unix_socket = true});
  EXPECT_TRUE(a.is_unix_socket());
  mp::Process child([&] { b.send_bytes(b.recv_bytes() + "!"); });
  child.start();
  a.send_bytes("ping");
  EXPECT_EQ(a.recv_bytes(), "ping!");
  expect_exit(child, 0);
}

TEST(Pipe, SimplexIsReaderFirstWriterSecond) {
  auto [r, w] = mp::Pipe(false);
  EXPECT_TRUE(r.readable());
  EXPECT_FALSE(r.writable());
  EXPECT_FALSE(w.readable());
  EXPECT_TRUE(w.writable());
  w.send(7);
  EXPECT_EQ(r.recv<int>(), 7);
  EXPECT_THROW(r.send(1), mp::OSError);
  EXPECT_THROW((void)w.recv<int>(), mp::OSError);
  EXPECT_THROW((void)w.poll(), mp::OSError);
}

TEST(Pipe, CreatingAPipeSetsDefaultSigpipeToIgnoredLikeCPython) {
  auto ends = mp::Pipe(false);
  struct sigaction sa {};
  ASSERT_EQ(::sigaction(SIGPIPE, nullptr, &sa), 0);
  EXPECT_NE(sa.sa_handler, SIG_DFL) << "a write to a closed pipe would kill the process";
}

TEST(Connection, SendBytesHonoursOffsetAndSize) {
  auto [r, w] = mp::Pipe(false);
  std::string data = "0123456789";
  w.send_bytes(data, 3);
  w.send_bytes(data, 2, 4);
  w.send_bytes(data, 10);  // empty message at the end is allowed
  std::vector<std::byte> raw(4, std::byte{0x41});
  w.send_bytes(std::span<const std::byte>(raw), 1, 2);
  EXPECT_EQ(r.recv_bytes(), "3456789");
  EXPECT_EQ(r.recv_bytes(), "2345");
  EXPECT_EQ(r.recv_bytes(), "");
  EXPECT_EQ(r.recv_bytes(), "AA");
  EXPECT_THROW(w.send_bytes(data, 11), mp::ValueError);
  EXPECT_THROW(w.send_bytes(data, 5, 6), mp::ValueError);
}

TEST(Connection, RecvBytesIntoFillsAtOffsetAndRaisesBufferTooShortWithTheMessage) {
  auto [r, w] = mp::Pipe(false);
  w.send_bytes("hello");
  w.send_bytes("this one is too long");
  w.send_bytes("ok");
  char buf[10] = {};
  EXPECT_EQ(r.recv_bytes_into(std::span<char>(buf), 2), 5u);
  EXPECT_EQ(std::string(buf + 2, 5), "hello");
  try {
    (void)r.recv_bytes_into(std::span<char>(buf));
    ADD_FAILURE() << "expected BufferTooShort";
  } catch (const mp::BufferTooShort& e) {
    EXPECT_EQ(e.message(), "this one is too long");
  }
  std::array<std::byte, 4> bytes{};
  EXPECT_EQ(r.recv_bytes_into(std::span<std::byte>(bytes)), 2u);  // the connection is still in step
  EXPECT_EQ(static_cast<char>(bytes[0]), 'o');
  EXPECT_THROW((void)r.recv_bytes_into(std::span<char>(buf), 11), mp::ValueError);
}

TEST(Connection, RecvBytesIntoReusedStringKeepsCapacity) {
  auto [r, w] = mp::Pipe(false);
  std::string buf;
  mp::Process writer([&] {
    for (int i = 0; i < 3; ++i) w.send_bytes(std::string(100000, static_cast<char>('a' + i)));
  });
  writer.start();
  EXPECT_EQ(r.recv_bytes(buf), 100000u);
  auto* data = buf.data();
  EXPECT_EQ(r.recv_bytes(buf), 100000u);
  EXPECT_EQ(buf.data(), data) << "same-size messages must reuse the buffer";
  EXPECT_EQ(buf, std::string(100000, 'b'));
  EXPECT_EQ(r.recv_bytes(buf), 100000u);
  EXPECT_EQ(buf[99999], 'c');
  expect_exit(writer, 0);
}

TEST(Connection, SixtyFourMiBMessagesCrossProcessesBothWays) {
  constexpr std::size_t kSize = 64u << 20;
  auto [a, b] = mp::Pipe();
  mp::Process child([&] {
    std::string big = pattern(kSize, 1);
    b.send_bytes(big);
    auto back = b.recv<std::vector<std::uint32_t>>();
    bool ok = back.size() == kSize / 4;
    for (std::size_t i = 0; ok && i < back.size(); ++i) ok = back[i] == i * 7;
    mp::exit(ok ? 0 : 5);
  });
  child.start();
  std::string got = a.recv_bytes();
  EXPECT_EQ(got.size(), kSize);
  EXPECT_TRUE(got == pattern(kSize, 1)) << "payload corrupted";
  std::vector<std::uint32_t> v(kSize / 4);
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = static_cast<std::uint32_t>(i * 7);
  a.send(v);
  expect_exit(child, 0);
}

TEST(Connection, ManyMessagesOfMixedSizesArriveWholeAndInOrder) {
  // Sizes cross every buffer boundary: read-ahead, compaction, direct large reads.
  auto [r, w] = mp::Pipe(false);
  std::mt19937 rng(42);
  std::vector<std::size_t> sizes(3000);
  for (auto& s : sizes) s = rng() % 4 == 0 ? rng() % 200000 : rng() % 300;
  mp::Process child([&] {
    r.close();
    for (std::size_t i = 0; i < sizes.size(); ++i) w.send_bytes(pattern(sizes[i], static_cast<unsigned>(i)));
  });
  child.start();
  w.close();
  std::string reuse;
  for (std::size_t i = 0; i < sizes.size(); ++i) {
    std::string got = (i % 2) ? r.recv_bytes() : (r.recv_bytes(reuse), reuse);
    ASSERT_EQ(got.size(), sizes[i]) << "message " << i;
    ASSERT_TRUE(got == pattern(sizes[i], static_cast<unsigned>(i))) << "message " << i;
  }
  EXPECT_THROW((void)r.recv_bytes(), mp::EOFError);
  expect_exit(child, 0);
}

TEST(Connection, ConcurrentWritersOnOnePipeNeverInterleaveSmallFrames) {
  auto [r, w] = mp::Pipe(false);
  constexpr int kWriters = 4, kEach = 5000;
  std::vector<std::unique_ptr<mp::Process>> writers;
  for (int k = 0; k < kWriters; ++k) {
    writers.push_back(std::make_unique<mp::Process>([&, k] {
      r.close();
      for (int i = 0; i < kEach; ++i) w.send_bytes(std::string(4000, static_cast<char>('a' + k)));
    }));
    writers.back()->start();
  }
  w.close();
  std::map<char, int> counts;
  for (int i = 0; i < kWriters * kEach; ++i) {
    std::string m = r.recv_bytes();
    ASSERT_EQ(m.size(), 4000u);
    ASSERT_EQ(m.find_first_not_of(m[0]), std::string::npos) << "two frames interleaved";
    ++counts[m[0]];
  }
  EXPECT_THROW((void)r.recv_bytes(), mp::EOFError);
  for (int k = 0; k < kWriters; ++k) EXPECT_EQ(counts[static_cast<char>('a' + k)], kEach);
  for (auto& p : writers) expect_exit(*p, 0);
}

TEST(Connection, EOFErrorOnlyAfterEveryWriterInEveryProcessCloses) {
  auto [r, w] = mp::Pipe(false);
  auto [go_r, go_w] = mp::Pipe(false);
  mp::Process child([&] {
    r.close();
    go_w.close();
    (void)go_r.recv<int>();  // hold our copy of the writer until told
    w.send(99);
  });
  child.start();
  w.close();
  go_r.close();
  EXPECT_FALSE(r.poll()) << "the child still holds a writer: no EOF yet";
  go_w.send(1);
  EXPECT_EQ(r.recv<int>(), 99);
  EXPECT_THROW((void)r.recv<int>(), mp::EOFError);
  EXPECT_THROW((void)r.recv<int>(), mp::EOFError) << "EOF is sticky";
  expect_exit(child, 0);
}

TEST(Connection, DuplexEndSeesEOFWhenOtherEndClosesEverywhere) {
  for (bool sock : {false, true}) {
    auto [a, b] = mp::Pipe(true, {.unix_socket = sock});
    mp::Process child([&] {
      a.close();
      b.send_bytes("last words");
    });
    child.start();
    b.close();
    EXPECT_EQ(a.recv_bytes(), "last words");
    EXPECT_THROW((void)a.recv_bytes(), mp::EOFError);
    expect_exit(child, 0);
  }
}

TEST(Connection, OversizedFrameRaisesAndClosesTheConnection) {
  auto [r, w] = mp::Pipe(false, {.max_message_size = 1024});
  w.send_bytes(std::string(1024, 'x'));
  w.send_bytes(std::string(1025, 'x'));
  EXPECT_EQ(r.recv_bytes().size(), 1024u);
  try {
    (void)r.recv_bytes();
    ADD_FAILURE() << "expected OSError";
  } catch (const mp::OSError& e) {
    EXPECT_EQ(e.code().value(), EMSGSIZE);
    EXPECT_NE(std::string(e.what()).find("bad message length 1025"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(r.closed());
  EXPECT_THROW((void)r.recv_bytes(), mp::OSError);
}

TEST(Connection, RecvBytesMaxlengthIsAPerCallLimit) {
  auto [r, w] = mp::Pipe(false);
  w.send_bytes("12345");
  EXPECT_THROW((void)r.recv_bytes(4), mp::OSError);
  EXPECT_TRUE(r.closed());
}

TEST(Connection, HugeLengthFromAForgedHeaderNeverAllocatesAndRaises) {
  auto [r, w] = mp::Pipe(false);
  raw_write(w.write_fileno(), std::string("\xff\xff\xff\xff\x7f\xff\xff\xff\xff\xff\xff\xff", 12));
  EXPECT_THROW((void)r.recv_bytes(), mp::OSError);
  auto [r2, w2] = mp::Pipe(false);
  raw_write(w2.write_fileno(), std::string("\x80\x00\x00\x00", 4));  // negative length
  EXPECT_THROW((void)r2.recv_bytes(), mp::OSError);
  EXPECT_TRUE(r2.closed());
}

TEST(Connection, LongHeaderFormIsAcceptedForAnySize) {
  // CPython writes ff ff ff ff + 8-byte length only above 2 GiB, but reads it for any size.
  auto [r, w] = mp::Pipe(false);
  raw_write(w.write_fileno(), std::string("\xff\xff\xff\xff\x00\x00\x00\x00\x00\x00\x00\x05hello", 17));
  EXPECT_EQ(r.recv_bytes(), "hello");
}

TEST(Connection, TruncatedFrameRaisesEndOfFileDuringMessage) {
  for (bool read_ahead : {true, false}) {
    auto [r, w] = mp::Pipe(false, {.read_ahead = read_ahead});
    raw_write(w.write_fileno(), std::string("\x00\x00\x00\x64", 4) + "only ten..");
    w.close();
    try {
      (void)r.recv_bytes();
      ADD_FAILURE() << "expected OSError";
    } catch (const mp::OSError& e) {
      EXPECT_EQ(e.code().value(), EPROTO);
      EXPECT_NE(std::string(e.what()).find("end of file during message"), std::string::npos) << e.what();
    }
    EXPECT_THROW((void)r.recv_bytes(), mp::EOFError) << "then the stream is simply over";
  }
  auto [r, w] = mp::Pipe(false);
  raw_write(w.write_fileno(), std::string("\x00\x00", 2));  // half a header
  w.close();
  EXPECT_THROW((void)r.recv<int>(), mp::OSError);
}

TEST(Connection, WrongTypeRaisesCodecErrorAndTheConnectionStaysUsable) {
  auto [r, w] = mp::Pipe(false);
  w.send(std::string("not an int"));
  w.send(5);
  EXPECT_THROW((void)r.recv<int>(), mp::CodecError);
  EXPECT_EQ(r.recv<int>(), 5);
}

TEST(Connection, UsingAClosedConnectionRaises) {
  auto [a, b] = mp::Pipe();
  a.close();
  a.close();  // idempotent
  EXPECT_TRUE(a.closed());
  try {
    a.send(1);
    ADD_FAILURE() << "expected OSError";
  } catch (const mp::OSError& e) {
    EXPECT_EQ(e.code().value(), EBADF);
    EXPECT_NE(std::string(e.what()).find("handle is closed"), std::string::npos);
  }
  EXPECT_THROW((void)a.recv_bytes(), mp::OSError);
  EXPECT_THROW((void)a.poll(), mp::OSError);
  EXPECT_THROW((void)a.fileno(), mp::OSError);
  mp::Connection moved_from = std::move(b);
  EXPECT_TRUE(b.closed());  // NOLINT(bugprone-use-after-move): moved-from is closed
}

TEST(Connection, SendingToAVanishedReaderRaisesBrokenPipeInsteadOfDying) {
  auto [r, w] = mp::Pipe(false);
  r.close();
  try {
    w.send_bytes("anyone?");
    ADD_FAILURE() << "expected OSError";
  } catch (const mp::OSError& e) {
    EXPECT_EQ(e.code().value(), EPIPE);
  }
  auto [a, b] = mp::Pipe(true, {.unix_socket = true});
  b.close();
  try {
    a.send_bytes(std::string(100000, 'x'));
    ADD_FAILURE() << "expected OSError";
  } catch (const mp::OSError& e) {
    EXPECT_TRUE(e.code().value() == EPIPE || e.code().value() == ECONNRESET) << e.what();
  }
}

TEST(Connection, PollTimesOutAndThenSeesData) {
  auto [a, b] = mp::Pipe();
  EXPECT_FALSE(a.poll());
  EXPECT_FALSE(a.poll(20ms));
  EXPECT_FALSE(a.poll(-5s)) << "a negative timeout counts as zero";
  auto [go_r, go_w] = mp::Pipe(false);
  mp::Process child([&] {
    (void)go_r.recv<int>();
    b.send(1);
  });
  child.start();
  go_w.send(0);
  EXPECT_TRUE(a.poll(std::nullopt));  // waits as long as it takes
  EXPECT_TRUE(a.poll());
  EXPECT_EQ(a.recv<int>(), 1);
  EXPECT_FALSE(a.poll());
  expect_exit(child, 0);
}

TEST(Connection, ReadAheadDataCountsAsReadyForPollAndWait) {
  auto [r, w] = mp::Pipe(false);
  w.send(1);
  w.send(2);
  EXPECT_EQ(r.recv<int>(), 1);  // one read() brought both messages in
  EXPECT_TRUE(r.poll());
  auto ready = mp::wait({r}, 0s);
  ASSERT_EQ(ready.size(), 1u);
  EXPECT_EQ(ready[0].connection(), &r);
  EXPECT_EQ(r.recv<int>(), 2);
  EXPECT_FALSE(r.poll());
}

TEST(Connection, WithoutReadAheadTwoProcessesCanTakeTurnsReadingOneEnd) {
  auto [r, w] = mp::Pipe(false, {.read_ahead = false});
  w.send(1);
  w.send(2);
  EXPECT_EQ(r.recv<int>(), 1);
  mp::Process child([&] { mp::exit(r.recv<int>() == 2 ? 0 : 1); });
  child.start();
  expect_exit(child, 0);
}

TEST(Connection, OneThreadSendsWhileAnotherReceives) {
  auto [a, b] = mp::Pipe();
  mp::Process echo([&] {
    a.close();
    try {
      for (;;) b.send_bytes(b.recv_bytes());
    } catch (const mp::EOFError&) {
    }
  });
  echo.start();
  b.close();
  constexpr int kN = 20000;
  std::thread sender([&a = a] {
    for (int i = 0; i < kN; ++i) a.send(i);
  });
  long sum = 0;
  for (int i = 0; i < kN; ++i) sum += a.recv<int>();
  sender.join();
  EXPECT_EQ(sum, static_cast<long>(kN) * (kN - 1) / 2);
  a.close();
  expect_exit(echo, 0);
}

// --- wait ----------------------------------------------------------------------------

TEST(Wait, ReturnsExactlyTheReadyConnectionsInOrder) {
  auto [r0, w0] = mp::Pipe(false);
  auto [r1, w1] = mp::Pipe(false);
  auto [r2, w2] = mp::Pipe(false);
  EXPECT_TRUE(mp::wait({r0, r1, r2}, 10ms).empty());
  w2.send(2);
  w0.send(0);
  auto ready = mp::wait({r0, r1, r2});
  ASSERT_EQ(ready.size(), 2u);
  EXPECT_EQ(ready[0].connection(), &r0);
  EXPECT_EQ(ready[1].connection(), &r2);
  std::vector<mp::Connection*> conns{&r0, &r1, &r2};
  auto ready2 = mp::wait(conns, 0s);
  EXPECT_EQ(ready2, (std::vector<mp::Connection*>{&r0, &r2}));
  w1.close();  // end of file is "ready" too: recv will raise EOFError
  EXPECT_EQ(mp::wait(conns).size(), 3u);
}

TEST(Wait, CollectsMessagesFromSeveralChildrenUntilEachCloses) {
  constexpr int kChildren = 3;
  std::vector<std::pair<mp::Connection, mp::Connection>> pipes;
  for (int i = 0; i < kChildren; ++i) pipes.push_back(mp::Pipe(false));
  std::vector<std::unique_ptr<mp::Process>> kids;
  for (int i = 0; i < kChildren; ++i) {
    kids.push_back(std::make_unique<mp::Process>([&, i] {
      for (int j = 0; j < kChildren; ++j) pipes[static_cast<std::size_t>(j)].first.close();
      for (int k = 0; k < 10; ++k) pipes[static_cast<std::size_t>(i)].second.send(i * 100 + k);
    }));
    kids.back()->start();
  }
  std::vector<mp::Connection*> readers;
  for (auto& p : pipes) {
    p.second.close();
    readers.push_back(&p.first);
  }
  int total = 0, got = 0;
  while (!readers.empty()) {
    for (mp::Connection* c : mp::wait(readers)) {
      try {
        total += c->recv<int>();
        ++got;
      } catch (const mp::EOFError&) {
        readers.erase(std::find(readers.begin(), readers.end(), c));
      }
    }
  }
  EXPECT_EQ(got, 30);
  EXPECT_EQ(total, 10 * (0 + 100 + 200) + 3 * 45);
  for (auto& k : kids) expect_exit(*k, 0);
}

TEST(Wait, ProcessSentinelsAndRawDescriptorsAreWaitable) {
  auto [go_r, go_w] = mp::Pipe(false);
  mp::Process child([&] { (void)go_r.recv<int>(); });
  child.start();
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  EXPECT_TRUE(mp::wait({child, fds[0]}, 0s).empty());
  raw_write(fds[1], "x");
  auto ready = mp::wait({child, fds[0]});
  ASSERT_EQ(ready.size(), 1u);
  EXPECT_EQ(ready[0].fd(), fds[0]);
  go_w.send(1);
  ready = mp::wait({mp::Waitable(child)});
  ASSERT_EQ(ready.size(), 1u);
  EXPECT_EQ(ready[0].fd(), child.sentinel());
  ::close(fds[0]);
  ::close(fds[1]);
  expect_exit(child, 0);
}

// --- descriptor passing --------------------------------------------------------------

TEST(FdPassing, AChildReceivesASocketAndServesItsPeer) {
  auto [parent_end, child_end] = mp::Pipe(true, {.unix_socket = true});
  mp::Process worker([&] {
    parent_end.close();
    auto hello = child_end.recv<std::string>();
    mp::UniqueFd sock = child_end.recv_fd();
    mp::Connection client(std::move(sock));
    client.send_bytes(hello + ", served by the worker");
  });
  worker.start();
  child_end.close();
  // The "accepted socket": one end of a fresh socketpair, whose other end stays here.
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  mp::Connection here(mp::UniqueFd{sv[0]});
  parent_end.send(std::string("hello"));  // messages and descriptors share one ordered stream
  parent_end.send_fd(sv[1]);
  ::close(sv[1]);  // the worker has its own copy now
  EXPECT_EQ(here.recv_bytes(), "hello, served by the worker");
  EXPECT_THROW((void)here.recv_bytes(), mp::EOFError) << "only the worker held the other end";
  expect_exit(worker, 0);
}

TEST(FdPassing, SeveralDescriptorsAtOnceAndMisorderedReceiveIsReported) {
  auto [a, b] = mp::Pipe(true, {.unix_socket = true});
  int p1[2], p2[2];
  ASSERT_EQ(::pipe2(p1, O_CLOEXEC), 0);
  ASSERT_EQ(::pipe2(p2, O_CLOEXEC), 0);
  a.send(7);
  a.send_fds(std::vector<int>{p1[1], p2[1]});
  EXPECT_THROW((void)b.recv_fd(), mp::OSError) << "the next item is a message";
  EXPECT_EQ(b.recv<int>(), 7) << "a failed recv_fd consumes nothing";
  auto fds = b.recv_fds(2);
  ASSERT_EQ(fds.size(), 2u);
  raw_write(fds[0].get(), "1");
  raw_write(fds[1].get(), "2");
  char c1 = 0, c2 = 0;
  ASSERT_EQ(::read(p1[0], &c1, 1), 1);
  ASSERT_EQ(::read(p2[0], &c2, 1), 1);
  EXPECT_EQ(c1, '1');
  EXPECT_EQ(c2, '2');
  EXPECT_NE(::fcntl(fds[0].get(), F_GETFD) & FD_CLOEXEC, 0);
  for (int fd : {p1[0], p1[1], p2[0], p2[1]}) ::close(fd);
  a.close();
  EXPECT_THROW((void)b.recv_fd(), mp::EOFError);
}

TEST(FdPassing, NeedsAUnixSocketConnection) {
  auto [a, b] = mp::Pipe();
  EXPECT_THROW(a.send_fd(0), mp::ValueError);
  EXPECT_THROW((void)b.recv_fd(), mp::ValueError);
}

// --- addresses -----------------------------------------------------------------------

TEST(Address, ParsesPythonStyleAddresses) {
  Address unix_path("/tmp/x.sock");
  EXPECT_EQ(unix_path.family(), Address::Family::unix_socket);
  EXPECT_EQ(unix_path.path(), "/tmp/x.sock");
  EXPECT_EQ(Address("relative.sock").family(), Address::Family::unix_socket);
  Address hp("example.org:8080");
  EXPECT_EQ(hp.family(), Address::Family::tcp);
  EXPECT_EQ(hp.host(), "example.org");
  EXPECT_EQ(hp.port(), 8080);
  EXPECT_EQ(Address("5000").host(), "127.0.0.1") << "a bare port binds loopback only";
  EXPECT_EQ(Address(":5000").host(), "127.0.0.1");
  EXPECT_EQ(Address("0.0.0.0:5000").host(), "0.0.0.0");
  Address v6("[::1]:9");
  EXPECT_EQ(v6.host(), "::1");
  EXPECT_EQ(v6.str(), "[::1]:9");
  EXPECT_EQ(Address(v6.str()), v6);
  EXPECT_EQ(Address("localhost", 1).str(), "localhost:1");
  EXPECT_EQ(Address(std::string("\0abstract", 9)).family(), Address::Family::unix_socket);
  EXPECT_EQ(Address("host:99999").family(), Address::Family::unix_socket) << "not a port: taken as a path";
  EXPECT_THROW(Address(""), mp::ValueError);
}

// --- Listener and Client -------------------------------------------------------------

TEST(Listener, UnixSocketIsPrivateAndRemovedOnClose) {
  std::string path = tmp_path("private.sock");
  {
    Listener l(path);
    struct stat st {};
    ASSERT_EQ(::stat(path.c_str(), &st), 0);
    EXPECT_TRUE(S_ISSOCK(st.st_mode));
    EXPECT_EQ(st.st_mode & 0777, 0600u);
    EXPECT_THROW(Listener{path}, mp::OSError) << "address in use";
  }
  EXPECT_NE(::access(path.c_str(), F_OK), 0) << "socket file left behind";
  Listener anon;
  std::string where = anon.address().path();
  EXPECT_EQ(::access(where.c_str(), F_OK), 0);
  anon.close();
  EXPECT_NE(::access(where.c_str(), F_OK), 0);
}

TEST(Listener, AbstractUnixNameLeavesNoFile) {
  std::string name = std::string(1, '\0') + "mp-test-abstract-" + std::to_string(::getpid());
  Listener l(Address::unix_socket(name), {.authkey = "k"});
  mp::Process client([&] { Client(l.address(), {.authkey = "k"}).send(5); });
  client.start();
  EXPECT_EQ(l.accept().recv<int>(), 5);
  expect_exit(client, 0);
}

TEST(Listener, AuthenticatedRoundTripOverUnixAndTcp) {
  for (const char* where : {"unix", "tcp"}) {
    SCOPED_TRACE(where);
    Listener l(std::string(where) == "unix" ? Address(tmp_path("auth.sock")) : Address("127.0.0.1:0"),
               {.authkey = "secret"});
    if (l.address().family() == Address::Family::tcp) EXPECT_NE(l.address().port(), 0);
    mp::Process client([&] {
      auto c = Client(l.address(), {.authkey = "secret"});
      c.send(c.recv<int>() + 1);
    });
    client.start();
    mp::Connection c = l.accept();
    c.send(41);
    EXPECT_EQ(c.recv<int>(), 42);
    if (l.address().family() == Address::Family::tcp) {
      ASSERT_TRUE(l.last_accepted().has_value());
      EXPECT_EQ(l.last_accepted()->host(), "127.0.0.1");
    }
    expect_exit(client, 0);
  }
}

TEST(Listener, WrongKeyFailsForThatClientOnlyAndTheListenerKeepsServing) {
  Listener l(tmp_path("wrongkey.sock"), {.authkey = "right"});
  mp::Process intruder([&] {
    try {
      (void)Client(l.address(), {.authkey = "wrong"});
    } catch (const mp::AuthenticationError&) {
      mp::exit(3);
    }
  });
  intruder.start();
  EXPECT_THROW((void)l.accept(), mp::AuthenticationError);
  expect_exit(intruder, 3);
  mp::Process friendly([&] { Client(l.address(), {.authkey = "right"}).send_bytes("hi"); });
  friendly.start();
  EXPECT_EQ(l.accept().recv_bytes(), "hi");
  expect_exit(friendly, 0);
}

TEST(Listener, SilentClientTimesOutWithoutBlockingTheNextOne) {
  Listener l(tmp_path("idle.sock"), {.authkey = "k", .handshake_timeout = 200ms});
  auto [sync_r, sync_w] = mp::Pipe(false);
  mp::Process idle([&] {
    auto c = Client(l.address());  // no authkey: connects and never answers
    sync_w.send(1);
    try {
      for (;;) (void)c.recv_bytes();
    } catch (const mp::EOFError&) {  // the server gave up on us
    }
  });
  idle.start();
  (void)sync_r.recv<int>();  // the idle client is first in the accept queue
  mp::Process good([&] { Client(l.address(), {.authkey = "k"}).send_bytes("served"); });
  good.start();
  try {
    (void)l.accept();
    ADD_FAILURE() << "expected AuthenticationError";
  } catch (const mp::AuthenticationError& e) {
    EXPECT_NE(std::string(e.what()).find("in time"), std::string::npos) << e.what();
  }
  EXPECT_EQ(l.accept().recv_bytes(), "served");
  expect_exit(idle, 0);
  expect_exit(good, 0);
}

TEST(Listener, AcceptWithTimeoutRaisesTimeoutError) {
  Listener l(Address("127.0.0.1", 0));
  EXPECT_THROW((void)l.accept(10ms), mp::TimeoutError);
  l.close();
  EXPECT_THROW((void)l.accept(), mp::OSError);
}

TEST(Client, TimesOutWhenTheListenerNeverChallenges) {
  Listener l(tmp_path("nochallenge.sock"));  // no authkey: never sends a challenge
  EXPECT_THROW((void)Client(l.address(), {.authkey = "k", .timeout = 100ms}), mp::TimeoutError);
}

TEST(Client, ConnectingToNobodyRaisesOSError) {
  EXPECT_THROW((void)Client(tmp_path("nobody.sock")), mp::OSError);
  Listener l(Address("127.0.0.1", 0));
  auto port = l.address().port();
  l.close();
  EXPECT_THROW((void)Client(Address("127.0.0.1", port)), mp::OSError);
}

TEST(Handshake, PublicHalvesAuthenticateOverAPipe) {
  auto [a, b] = mp::Pipe();
  mp::Process peer([&] {
    mp::connection::answer_challenge(b, "key");
    mp::connection::deliver_challenge(b, "key");
  });
  peer.start();
  mp::connection::deliver_challenge(a, "key");
  mp::connection::answer_challenge(a, "key");
  expect_exit(peer, 0);
}

// --- against real CPython ------------------------------------------------------------

namespace {

// A Python client: authenticates with multiprocessing's own code, then exercises framing.
constexpr const char* kPyClient = R"PY(
import sys, multiprocessing.connection as mc
addr = sys.argv[1]
if not addr.startswith('/'):
    h, p = addr.rsplit(':', 1); addr = (h, int(p))
key = None if sys.argv[2] == '-' else sys.argv[2].encode()
try:
    c = mc.Client(addr, authkey=key)
except mc.AuthenticationError as e:
    print('AuthenticationError:', e, flush=True); sys.exit(0)
m = c.recv_bytes()
c.send_bytes(m[::-1])
big = c.recv_bytes()
c.send_bytes(b'%d %d' % (len(big), sum(big) % 65521))
c.send_bytes(b'x' * 100000)
print('python client ok', flush=True)
)PY";

// A Python listener.
constexpr const char* kPyListener = R"PY(
import sys, multiprocessing.connection as mc
key = None if sys.argv[2] == '-' else sys.argv[2].encode()
if sys.argv[1] == 'tcp':
    l = mc.Listener(('127.0.0.1', 0), authkey=key); print('%s:%d' % l.address, flush=True)
else:
    l = mc.Listener(sys.argv[1], authkey=key); print(l.address, flush=True)
try:
    c = l.accept()
except mc.AuthenticationError as e:
    print('AuthenticationError:', e, flush=True); sys.exit(0)
c.send_bytes(b'hello from python')
c.send_bytes(c.recv_bytes().upper())
print('python listener ok', flush=True)
)PY";

// CPython 3.12+'s handshake ({digest}-prefixed challenges and answers), written out on
// top of a 3.11 Connection with hmac, so this box's 3.11 can play a 3.12 peer.
constexpr const char* kPy312 = R"PY(
import sys, os, hmac, multiprocessing.connection as mc
def deliver(c, key, digest):
    msg = b'{%s}' % digest.encode() + os.urandom(40)
    c.send_bytes(b'#CHALLENGE#' + msg)
    resp = c.recv_bytes(256)
    prefix = b'{%s}' % digest.encode()
    ok = resp.startswith(prefix) and hmac.compare_digest(hmac.new(key, msg, digest).digest(), resp[len(prefix):])
    c.send_bytes(b'#WELCOME#' if ok else b'#FAILURE#')
    return ok
def answer(c, key, digest):
    m = c.recv_bytes(256)
    assert m.startswith(b'#CHALLENGE#'), m
    m = m[11:]
    assert m.startswith(b'{sha256}') and len(m) == 48, m
    c.send_bytes(b'{%s}' % digest.encode() + hmac.new(key, m, digest).digest())
    return c.recv_bytes(256) == b'#WELCOME#'
role, addr, key, digest = sys.argv[1], sys.argv[2], sys.argv[3].encode(), sys.argv[4]
if role == 'client':
    c = mc.Client(addr)
    a = answer(c, key, digest)
    d = deliver(c, key, digest) if a else False
else:
    l = mc.Listener(addr); print('listening', flush=True)
    c = l.accept()
    d = deliver(c, key, digest)
    a = answer(c, key, digest) if d else False
print('answered=%s delivered=%s' % (a, d), flush=True)
if a and d:
    c.send_bytes(b'modern ' + digest.encode())
)PY";

// fd passing with multiprocessing.reduction's send_handle / recv_handle.
constexpr const char* kPyFds = R"PY(
import sys, os, multiprocessing.connection as mc
from multiprocessing import reduction
c = mc.Client(sys.argv[1])
r, w = os.pipe()
reduction.send_handle(c, w, 0)
os.close(w)
fd = reduction.recv_handle(c)
os.write(fd, b'python wrote through the descriptor from C++')
os.close(fd)
print(os.read(r, 100).decode(), flush=True)
)PY";

}  // namespace

TEST(Python, PythonClientAuthenticatesAndExchangesFramesWithMpListener) {
  if (!have_python()) GTEST_SKIP() << "python3 with multiprocessing is not available";
  for (const char* where : {"unix", "tcp"}) {
    SCOPED_TRACE(where);
    Listener l(std::string(where) == "unix" ? Address(tmp_path("py.sock")) : Address("127.0.0.1", 0),
               {.authkey = "py-secret"});
    PythonPeer py({"-c", kPyClient, l.address().str(), "py-secret"});
    mp::Connection c = l.accept();  // Python 3.11 answers our {sha256} challenge with raw HMAC-MD5
    c.send_bytes("hello from C++");
    EXPECT_EQ(c.recv_bytes(), "++C morf olleh");
    std::string big = pattern(1 << 20, 9);
    c.send_bytes(big);
    long sum = 0;
    for (unsigned char ch : big) sum += ch;
    EXPECT_EQ(c.recv_bytes(), std::to_string(big.size()) + " " + std::to_string(sum % 65521));
    EXPECT_EQ(c.recv_bytes(), std::string(100000, 'x'));  // Python writes header and body separately
    EXPECT_THROW((void)c.recv_bytes(), mp::EOFError);
    EXPECT_EQ(py.finish(), 0) << py.all();
    EXPECT_NE(py.all().find("python client ok"), std::string::npos) << py.all();
  }
}

TEST(Python, PythonClientWithWrongKeyIsRejectedAndTheListenerSurvives) {
  if (!have_python()) GTEST_SKIP() << "python3 with multiprocessing is not available";
  Listener l(tmp_path("pywrong.sock"), {.authkey = "right"});
  {
    PythonPeer py({"-c", kPyClient, l.address().str(), "wrong"});
    EXPECT_THROW((void)l.accept(), mp::AuthenticationError);
    EXPECT_EQ(py.finish(), 0) << py.all();
    EXPECT_NE(py.all().find("AuthenticationError"), std::string::npos) << py.all();
  }
  PythonPeer py({"-c", kPyClient, l.address().str(), "right"});
  mp::Connection c = l.accept();
  c.send_bytes("ab");
  EXPECT_EQ(c.recv_bytes(), "ba");
  c.close();  // the script then fails with EOFError: all we wanted was a successful handshake
  (void)py.finish();
}

TEST(Python, MpClientAuthenticatesWithPythonListener) {
  if (!have_python()) GTEST_SKIP() << "python3 with multiprocessing is not available";
  for (const char* where : {"unix", "tcp"}) {
    SCOPED_TRACE(where);
    std::string path = tmp_path("pylistener.sock");
    PythonPeer py({"-c", kPyListener, std::string(where) == "unix" ? path : "tcp", "shared"});
    std::string addr = py.line();  // Python 3.11 sends a legacy 20-byte challenge
    auto c = Client(addr, {.authkey = "shared"});
    EXPECT_EQ(c.recv_bytes(), "hello from python");
    c.send_bytes("shout");
    EXPECT_EQ(c.recv_bytes(), "SHOUT");
    EXPECT_EQ(py.finish(), 0) << py.all();
    EXPECT_NE(py.all().find("python listener ok"), std::string::npos) << py.all();
  }
}

TEST(Python, MpClientWithWrongKeyGetsAuthenticationErrorFromPythonListener) {
  if (!have_python()) GTEST_SKIP() << "python3 with multiprocessing is not available";
  PythonPeer py({"-c", kPyListener, "tcp", "shared"});
  std::string addr = py.line();
  EXPECT_THROW((void)Client(addr, {.authkey = "not shared"}), mp::AuthenticationError);
  EXPECT_EQ(py.finish(), 0) << py.all();
  EXPECT_NE(py.all().find("AuthenticationError"), std::string::npos) << py.all();
}

TEST(Python, ModernDigestPrefixedHandshakeBothWays) {
  if (!have_python()) GTEST_SKIP() << "python3 with multiprocessing is not available";
  for (const char* digest : {"sha256", "sha384", "sha3_256", "md5"}) {
    SCOPED_TRACE(digest);
    {  // Python (3.12 rules) connects to our Listener
      Listener l(tmp_path(std::string("modern-") + digest + ".sock"), {.authkey = "k3"});
      PythonPeer py({"-c", kPy312, "client", l.address().str(), "k3", digest});
      mp::Connection c = l.accept();
      EXPECT_EQ(c.recv_bytes(), std::string("modern ") + digest);
      EXPECT_EQ(py.finish(), 0) << py.all();
    }
    {  // we connect to a Python listener speaking 3.12 rules
      std::string path = tmp_path(std::string("modern-py-") + digest + ".sock");
      PythonPeer py({"-c", kPy312, "server", path, "k3", digest});
      EXPECT_EQ(py.line(), "listening");
      auto c = Client(path, {.authkey = "k3"});
      EXPECT_EQ(c.recv_bytes(), std::string("modern ") + digest);
      EXPECT_EQ(py.finish(), 0) << py.all();
      EXPECT_NE(py.all().find("answered=True delivered=True"), std::string::npos) << py.all();
    }
  }
  Listener l(tmp_path("modern-wrong.sock"), {.authkey = "k3"});
  PythonPeer py({"-c", kPy312, "client", l.address().str(), "other", "sha256"});
  EXPECT_THROW((void)l.accept(), mp::AuthenticationError);
  EXPECT_EQ(py.finish(), 0) << py.all();
  EXPECT_NE(py.all().find("answered=False"), std::string::npos) << py.all();
}

TEST(Python, DescriptorsCrossBetweenPythonAndMp) {
  if (!have_python()) GTEST_SKIP() << "python3 with multiprocessing is not available";
  Listener l(tmp_path("pyfds.sock"));
  PythonPeer py({"-c", kPyFds, l.address().str()});
  mp::Connection c = l.accept();
  {
    mp::UniqueFd from_python = c.recv_fd();  // Python's reduction.send_handle
    raw_write(from_python.get(), "C++ wrote through the descriptor from Python");
  }
  int p[2];
  ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
  c.send_fd(p[1]);  // Python's reduction.recv_handle
  ::close(p[1]);
  std::string got;
  char buf[256];
  ssize_t n;
  while ((n = ::read(p[0], buf, sizeof buf)) > 0) got.append(buf, static_cast<std::size_t>(n));
  ::close(p[0]);
  EXPECT_EQ(got, "python wrote through the descriptor from C++");
  EXPECT_EQ(py.finish(), 0) << py.all();
  EXPECT_NE(py.all().find("C++ wrote through the descriptor from Python"), std::string::npos) << py.all();
}

// --- the seed example ----------------------------------------------------------------

TEST(Examples, PipeDuplexShowsBothDirectionsAndEOFError) {
  auto r = mp_test::run(mp_test::example("pipe_duplex"));
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const char* expected[] = {
      "parent: sending 'eeeee' on conn1",
      "child: conn2.recv() -> 'eeeee' (sent by the parent on conn1)",
      "parent: conn1.recv() -> \"got 'eeeee'\" (sent by the child on conn2)",
      "parent: closing conn1",
      "child: conn2.recv() raised EOFError: every conn1 is closed",
      "child: conn2.send() raised OSError (Broken pipe)",
      "parent: conn2.recv() raised EOFError as well",
      "child exit code 0",
  };
  std::size_t pos = 0;
  for (const char* line : expected) {
    auto at = r.out.find(line, pos);
    ASSERT_NE(at, std::string::npos) << "missing or out of order: " << line << "\n" << r.out;
    pos = at;
  }
}

// Issue 20: a constructor that fails partway leaves no process, descriptor or file behind.
// Every descriptor it takes is made to fail once (tests/helpers/fd_exhaustion.hpp).
TEST(Listener, AConstructorOutOfDescriptorsAtAnyStepLeavesNothingBehind) {
  if (mp_test::kSanitizerNeedsDescriptors) GTEST_SKIP() << mp_test::kSanitizerSkipReason;
  auto r = mp_test::construct_out_of_descriptors([] { Listener l; });
  EXPECT_EQ(r.problem, "");
  EXPECT_TRUE(r.succeeded);
  EXPECT_GE(r.failures, 1);
  auto tcp = mp_test::construct_out_of_descriptors([] { Listener l(Address("127.0.0.1:0")); });
  EXPECT_EQ(tcp.problem, "");
  EXPECT_TRUE(tcp.succeeded);
  EXPECT_GE(tcp.failures, 1);
}

// Issue 20: a constructor that fails partway leaves no process, descriptor or file behind.
// Every descriptor it takes is made to fail once (tests/helpers/fd_exhaustion.hpp).
TEST(Pipe, OutOfDescriptorsAtAnyStepLeavesNothingBehind) {
  if (mp_test::kSanitizerNeedsDescriptors) GTEST_SKIP() << mp_test::kSanitizerSkipReason;
  for (bool duplex : {true, false}) {
    auto r = mp_test::construct_out_of_descriptors([duplex] {
      auto [a, b] = mp::Pipe(duplex);
      b.send(1);
      (void)a.recv<int>();
    });
    EXPECT_EQ(r.problem, "") << "duplex=" << duplex;
    EXPECT_TRUE(r.succeeded) << "duplex=" << duplex;
    EXPECT_GE(r.failures, duplex ? 4 : 2) << "duplex=" << duplex;
  }
}

// Issue 20: a constructor that fails partway leaves no process, descriptor or file behind.
// Every descriptor it takes is made to fail once (tests/helpers/fd_exhaustion.hpp).
TEST(Client, AConstructorOutOfDescriptorsAtAnyStepLeavesNothingBehind) {
  if (mp_test::kSanitizerNeedsDescriptors) GTEST_SKIP() << mp_test::kSanitizerSkipReason;
  // The listener is made in the test process (all its descriptors are below the limit the
  // helper sets); only the connecting end runs short.
  for (bool tcp : {false, true}) {
    Listener l = tcp ? Listener(Address("127.0.0.1:0")) : Listener();
    auto r = mp_test::construct_out_of_descriptors([&] { auto c = Client(l.address()); });
    EXPECT_EQ(r.problem, "") << "tcp=" << tcp;
    EXPECT_TRUE(r.succeeded) << "tcp=" << tcp;
    EXPECT_GE(r.failures, 1) << "tcp=" << tcp;
  }
}
