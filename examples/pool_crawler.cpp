// Seed 002, 十三: the pool crawler — fetch pages in worker processes, parse each page in
// a callback in the parent. No outside network: the example starts its own tiny HTTP
// server on 127.0.0.1 (a child process) serving two "movie board" pages.
#include <mp/pool.hpp>
#include <mp/process.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <map>
#include <regex>
#include <string>
#include <utility>
#include <vector>

namespace {

std::string board_page(int board) {
  const char* titles[] = {"Farewell My Concubine", "The Shawshank Redemption", "Roman Holiday"};
  const char* stars[] = {"Leslie Cheung", "Tim Robbins", "Audrey Hepburn"};
  std::string html = "<html><body><dl>\n";
  for (int i = 0; i < 3; ++i) {
    html += "<dd><i class=\"board-index\">" + std::to_string(board * 10 + i + 1) + "</i>";
    html += "<a title=\"" + std::string(titles[i]) + "\"></a>";
    html += "<p class=\"star\">\n  Stars:" + std::string(stars[i]) + "\n</p>";
    html += "<p class=\"releasetime\">Time:199" + std::to_string(i + 3) + "</p>";
    html += "<i class=\"integer\">9.</i><i class=\"fraction\">" + std::to_string(5 - i) + "</i></dd>\n";
  }
  return html + "</dl></body></html>\n";
}

/// The HTTP server: answers GET /board/N with a page, anything else with 404.
void serve(int listen_fd) {
  for (;;) {
    int c = ::accept(listen_fd, nullptr, nullptr);
    if (c < 0) continue;
    char buf[1024] = {};
    ssize_t n = ::recv(c, buf, sizeof buf - 1, 0);
    int board = 0;
    std::string body, status = "404 Not Found";
    if (n > 0 && std::sscanf(buf, "GET /board/%d", &board) == 1) {
      body = board_page(board);
      status = "200 OK";
    }
    std::string resp = "HTTP/1.0 " + status + "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
    [[maybe_unused]] auto w = ::send(c, resp.data(), resp.size(), MSG_NOSIGNAL);
    ::close(c);
  }
}

/// Runs in a pool worker (the seed's requests.get): returns (status, body).
std::pair<int, std::string> get_page(int port, std::string path) {
  int s = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(s, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(s);
    throw std::runtime_error("cannot connect to 127.0.0.1:" + std::to_string(port));
  }
  std::string req = "GET " + path + " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
  [[maybe_unused]] auto w = ::send(s, req.data(), req.size(), MSG_NOSIGNAL);
  std::string resp;
  char buf[4096];
  for (ssize_t n; (n = ::recv(s, buf, sizeof buf, 0)) > 0;) resp.append(buf, static_cast<std::size_t>(n));
  ::close(s);
  int code = 0;
  std::sscanf(resp.c_str(), "HTTP/1.%*d %d", &code);
  auto body = resp.find("\r\n\r\n");
  return {code, body == std::string::npos ? "" : resp.substr(body + 4)};
}

/// The callback (the seed's parse_page), in the parent.
void parse_page(const std::pair<int, std::string>& info) {
  static const std::regex pattern(
      R"re(<dd>[\s\S]*?board-index[\s\S]*?>(\d+)<[\s\S]*?title="([\s\S]*?)"[\s\S]*?star[\s\S]*?>([\s\S]*?)<[\s\S]*?releasetime[\s\S]*?>([\s\S]*?)<[\s\S]*?integer[\s\S]*?>([\s\S]*?)<[\s\S]*?fraction[\s\S]*?>([\s\S]*?)<)re");
  if (info.first != 200) return;
  for (std::sregex_iterator it(info.second.begin(), info.second.end(), pattern), end; it != end; ++it) {
    auto& m = *it;
    std::string actor = std::regex_replace(m[3].str(), std::regex(R"(^\s+|\s+$)"), "");
    std::printf("{'index': '%s', 'title': '%s', 'actor': '%s', 'time': '%s', 'score': '%s'}\n", m[1].str().c_str(),
                m[2].str().c_str(), actor.substr(6).c_str(), m[4].str().substr(5).c_str(),
                (m[5].str() + m[6].str()).c_str());
  }
}

}  // namespace

int main() {
  int lfd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (::bind(lfd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(lfd, 16) != 0 ||
      ::getsockname(lfd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    std::perror("cannot listen on 127.0.0.1");
    return 1;
  }
  int port = ntohs(a.sin_port);
  mp::Process server({.name = "http-server", .daemon = true}, serve, lfd);
  server.start();
  ::close(lfd);
  std::printf("local server on 127.0.0.1:%d\n", port);

  mp::Pool p;  // cpu_count() workers, as the seed's Pool()
  std::vector<mp::AsyncResult<std::pair<int, std::string>>> res_l;
  for (const char* url : {"/board/7", "/board/4"}) res_l.push_back(p.apply_async(get_page, mp::args(port, std::string(url)), parse_page));
  for (auto& r : res_l) r.get();  // the callbacks have run once get() returns
  std::printf("fetched %zu pages\n", res_l.size());
  server.terminate();
  server.join();
}
