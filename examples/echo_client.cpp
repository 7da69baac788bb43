// Seed 002, 十二: the client of the socket servers (echo_server_process, echo_server_pool).
//
//   echo_client PORT        connects to 127.0.0.1:PORT; each line read from stdin is sent
//                           (without its newline, as the seed's client.send(msg)), and the
//                           server's answer is printed. Stops after sending "over" (the
//                           process server closes then) or at end of stdin.
//
// The seed reads with input('请输入:'); here stdin may be a terminal or a pipe, so a test
// or a shell can script the conversation: printf 'hi\nover\n' | echo_client 8888
// Both servers answer with as many bytes as were sent, so the client reads exactly that
// many (the seed's single recv(1024), made safe for a reply that arrives in pieces).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>

namespace {

bool send_all(int fd, const std::string& s) {
  for (std::size_t at = 0; at < s.size();) {
    ssize_t n = ::send(fd, s.data() + at, s.size() - at, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    at += static_cast<std::size_t>(n);
  }
  return true;
}

/// Receives `size` bytes into `data`; false if the server closes first.
bool recv_exactly(int fd, std::string& data, std::size_t size) {
  data.clear();
  while (data.size() < size) {
    char chunk[1024];  // the seed's recv(1024)
    ssize_t n = ::recv(fd, chunk, std::min(sizeof chunk, size - data.size()), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data.append(chunk, static_cast<std::size_t>(n));
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: echo_client PORT   (then type lines; 'over' ends)\n");
    return 2;
  }
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<std::uint16_t>(std::atoi(argv[1])));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd < 0 || ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    std::fprintf(stderr, "echo_client: cannot connect to 127.0.0.1:%s: %s\n", argv[1], std::strerror(errno));
    return 1;
  }
  std::string msg, reply;
  while (std::getline(std::cin, msg)) {
    if (msg.empty()) continue;  // the seed's `if not msg: continue`
    if (!send_all(fd, msg)) break;
    if (msg == "over") break;
    if (!recv_exactly(fd, reply, msg.size())) {
      std::printf("server closed the connection\n");
      break;
    }
    std::printf("%s\n", reply.c_str());
  }
  ::close(fd);
  return 0;
}
