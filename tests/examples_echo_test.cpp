// Drives the seed's socket servers (examples/echo_server_process, examples/echo_server_pool)
// with 6 concurrent clients from this test, over TCP on 127.0.0.1, and runs their demo modes.
// The clients talk either the seed's way (client.send(msg) with no newline, then recv) or
// in newline-terminated lines (what nc and telnet send): the servers echo bytes, so both work.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <optional>
#include <cstdint>
#include <regex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <mp/subprocess.hpp>

#include "helpers/support.hpp"

namespace sp = mp::subprocess;
using mp_test::count;
using mp_test::example;

namespace {

constexpr int kClients = 6;
constexpr int kMessages = 4;

/// How a test client frames its messages.
enum class Style {
  Seed,   // the seeds' clients: client.send(msg.encode()) — no newline — then recv
  Lines,  // each message followed by '\n', as typed into nc or telnet
};

/// A blocking client with a generous receive timeout (a safety net against a hung server,
/// never a synchronisation device).
class Client {
 public:
  explicit Client(std::uint16_t port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) return;
    timeval tv{60, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  }
  ~Client() { close(); }
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;
  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  [[nodiscard]] bool connected() const { return connected_; }
  /// Sends exactly these bytes.
  bool send_raw(const std::string& out) {
    for (std::size_t at = 0; at < out.size();) {
      ssize_t n = ::send(fd_, out.data() + at, out.size() - at, MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      at += static_cast<std::size_t>(n);
    }
    return true;
  }
  /// The seed's recv(1024), repeated until `size` bytes have arrived (TCP may split a
  /// reply); nullopt at end of stream / error / timeout.
  std::optional<std::string> recv_bytes(std::size_t size) {
    std::string got;
    while (got.size() < size) {
      char chunk[1024];
      ssize_t n = ::recv(fd_, chunk, std::min(sizeof chunk, size - got.size()), 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return std::nullopt;
      got.append(chunk, static_cast<std::size_t>(n));
    }
    return got;
  }
  /// True once the server has closed the connection (recv returns 0) with nothing sent first.
  bool sees_end_of_stream() {
    char c;
    for (;;) {
      ssize_t n = ::recv(fd_, &c, 1, 0);
      if (n < 0 && errno == EINTR) continue;
      return n == 0;
    }
  }

 private:
  int fd_ = -1;
  bool connected_ = false;
};

std::string upper(std::string s) {
  for (char& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

struct ServerRun {
  std::vector<std::string> client_errors;  // one entry per failed check, empty when all good
  int returncode = -1000;
  std::string out;  // everything the server printed
};

/// Starts `name PORT=0 kClients`, reads the port it prints, runs kClients concurrent
/// clients (threads) sending kMessages messages each in `style`, each one waiting for its
/// echo before the next (as the seeds' clients do), then collects the server's output and
/// exit status. `pool_server`: the pool server answers in upper case and ends on close;
/// the process server echoes as is and ends on "over".
ServerRun drive(const std::string& name, bool pool_server, Style style) {
  ServerRun r;
  sp::Popen server({example(name), "0", std::to_string(kClients)}, {.stdout = sp::PIPE});
  std::string first = server.stdout().readline();
  std::smatch m;
  if (!std::regex_search(first, m, std::regex(R"(listening on 127\.0\.0\.1:(\d+))"))) {
    r.client_errors.push_back("unexpected first line: '" + first + "'");
    server.kill();
    r.returncode = server.wait();
    return r;
  }
  auto port = static_cast<std::uint16_t>(std::stoi(m[1]));

  std::vector<std::vector<std::string>> errors(kClients);
  std::vector<std::thread> threads;
  for (int c = 0; c < kClients; ++c) {
    threads.emplace_back([&, c] {
      auto& err = errors[static_cast<std::size_t>(c)];
      Client cl(port);
      const std::string end = style == Style::Lines ? "\n" : "";
      if (!cl.connected()) {
        err.push_back("client " + std::to_string(c) + ": connect failed");
        return;
      }
      for (int i = 0; i < kMessages; ++i) {
        std::string msg = "msg " + std::to_string(c) + "-" + std::to_string(i) + " from the test" + end;
        std::string want = pool_server ? upper(msg) : msg;
        if (!cl.send_raw(msg)) {
          err.push_back("client " + std::to_string(c) + ": send failed");
          return;
        }
        auto got = cl.recv_bytes(want.size());
        if (got != want) {
          err.push_back("client " + std::to_string(c) + ": got '" + got.value_or("<eof or timeout>") + "'");
          return;
        }
      }
      if (!pool_server) {
        cl.send_raw("over" + end);
        // The handler closes the connection after "over": end of stream, no reply.
        if (!cl.sees_end_of_stream()) err.push_back("client " + std::to_string(c) + ": no end of stream after over");
      }
      cl.close();  // the pool worker ends its loop at end of stream
    });
  }
  for (auto& t : threads) t.join();
  for (auto& e : errors) r.client_errors.insert(r.client_errors.end(), e.begin(), e.end());

  try {
    r.out = first + server.communicate({}, std::chrono::seconds(120)).first;
    r.returncode = *server.returncode();
  } catch (const std::exception& e) {
    r.client_errors.push_back(std::string("server did not exit by itself: ") + e.what());
    server.kill();
    r.returncode = server.wait();
  }
  return r;
}

std::set<std::string> worker_pids(const std::string& out) {
  std::set<std::string> pids;
  std::regex re(R"(worker pid (\d+) serves connection \d+)");
  for (auto it = std::sregex_iterator(out.begin(), out.end(), re); it != std::sregex_iterator(); ++it)
    pids.insert((*it)[1]);
  return pids;
}

}  // namespace

TEST(ExamplesEcho, ProcessServerEchoesTheSeedClientsBytesWithoutNewline) {
  ServerRun r = drive("echo_server_process", false, Style::Seed);
  EXPECT_TRUE(r.client_errors.empty()) << ::testing::PrintToString(r.client_errors) << "\n" << r.out;
  EXPECT_EQ(r.returncode, 0) << r.out;
  EXPECT_EQ(count(r.out, "closed after " + std::to_string(kMessages) + " messages"), kClients) << r.out;
  EXPECT_EQ(count(r.out, ": msg 0-0 from the test\n"), 1) << r.out;  // the seed's print(msg)
  EXPECT_NE(r.out.find("served 6 connections, 0 failures"), std::string::npos) << r.out;
}

TEST(ExamplesEcho, PoolServerUppercasesTheSeedClientsBytesWithoutNewline) {
  ServerRun r = drive("echo_server_pool", true, Style::Seed);
  EXPECT_TRUE(r.client_errors.empty()) << ::testing::PrintToString(r.client_errors) << "\n" << r.out;
  EXPECT_EQ(r.returncode, 0) << r.out;
  EXPECT_EQ(count(r.out, ": " + std::to_string(kMessages) + " messages echoed"), kClients) << r.out;
  EXPECT_LE(worker_pids(r.out).size(), 4u) << r.out;
  EXPECT_NE(r.out.find("0 failures"), std::string::npos) << r.out;
}

TEST(ExamplesEcho, ProcessServerEchoesSixConcurrentLineClientsAndExits) {
  ServerRun r = drive("echo_server_process", false, Style::Lines);
  EXPECT_TRUE(r.client_errors.empty()) << ::testing::PrintToString(r.client_errors) << "\n" << r.out;
  EXPECT_EQ(r.returncode, 0) << r.out;
  EXPECT_EQ(count(r.out, "accepted connection "), kClients) << r.out;
  EXPECT_EQ(count(r.out, "closed after " + std::to_string(kMessages) + " messages"), kClients) << r.out;
  EXPECT_NE(r.out.find("served 6 connections, 0 failures"), std::string::npos) << r.out;
}

TEST(ExamplesEcho, PoolServerUppercasesSixLineClientsWithAtMostFourWorkers) {
  ServerRun r = drive("echo_server_pool", true, Style::Lines);
  EXPECT_TRUE(r.client_errors.empty()) << ::testing::PrintToString(r.client_errors) << "\n" << r.out;
  EXPECT_EQ(r.returncode, 0) << r.out;
  EXPECT_EQ(count(r.out, "accepted connection "), kClients) << r.out;
  for (int k = 1; k <= kClients; ++k)  // each connection fetched by exactly one worker
    EXPECT_EQ(count(r.out, " serves connection " + std::to_string(k) + "\n"), 1) << r.out;
  auto pids = worker_pids(r.out);
  EXPECT_GE(pids.size(), 1u) << r.out;
  EXPECT_LE(pids.size(), 4u) << r.out;
  EXPECT_EQ(count(r.out, " messages echoed by worker pid "), kClients) << r.out;
  EXPECT_EQ(count(r.out, ": " + std::to_string(kMessages) + " messages echoed"), kClients) << r.out;
  EXPECT_NE(r.out.find("0 failures"), std::string::npos) << r.out;
}

TEST(ExamplesEcho, ProcessServerDemoServesItsOwnSixClients) {
  auto r = mp_test::run(example("echo_server_process"));
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_EQ(count(r.out, ": 3 echoes ok"), kClients) << r.out;
  EXPECT_EQ(count(r.out, "closed after 3 messages"), kClients) << r.out;
  EXPECT_NE(r.out.find("served 6 connections, 0 failures"), std::string::npos) << r.out;
}

TEST(ExamplesEcho, PoolServerDemoServesItsOwnSixClients) {
  auto r = mp_test::run(example("echo_server_pool"));
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_EQ(count(r.out, ": 3 upper-case echoes ok"), kClients) << r.out;
  auto pids = worker_pids(r.out);
  EXPECT_GE(pids.size(), 1u) << r.out;
  EXPECT_LE(pids.size(), 4u) << r.out;
  EXPECT_NE(r.out.find("served 6 connections with"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("0 failures"), std::string::npos) << r.out;
}

TEST(ExamplesEcho, ClientTalksToTheProcessServerFromStdin) {
  sp::Popen server({example("echo_server_process"), "0", "1"}, {.stdout = sp::PIPE});
  std::string first = server.stdout().readline();
  std::smatch m;
  ASSERT_TRUE(std::regex_search(first, m, std::regex(R"(listening on 127\.0\.0\.1:(\d+))"))) << first;
  auto c = sp::run({example("echo_client"), m[1].str()},
                   {.input = "hello\n\nworld\nover\nnot sent\n", .capture_output = true,
                    .timeout = std::chrono::seconds(120)});
  EXPECT_EQ(c.returncode, 0) << c.stderr;
  EXPECT_EQ(c.stdout, "hello\nworld\n");
  std::string out = first + server.communicate({}, std::chrono::seconds(120)).first;
  EXPECT_EQ(server.returncode(), 0) << out;
  EXPECT_NE(out.find("connection 1 closed after 2 messages"), std::string::npos) << out;
}
