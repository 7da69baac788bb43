// Seed: "子进程需要输入,通过communicate()方法" — a child that reads its input from us: the
// pipes are set up with PIPE, communicate() writes the input, closes stdin, and collects
// stdout and stderr until the child exits. (The seed fed commands to nslookup; with no
// network here, sort and a small shell script play the interactive program.)
#include <cstdio>

#include "mp/subprocess.hpp"

namespace sp = mp::subprocess;

int main() {
  std::puts("$ sort");
  sp::Popen p({"sort"}, {.stdin = sp::PIPE, .stdout = sp::PIPE, .stderr = sp::PIPE});
  auto [output, err] = p.communicate("set q = mx\npython.org\nexit\n");
  std::printf("%s", output.c_str());
  std::printf("Exit code: %d\n", *p.returncode());

  std::puts("$ sh -c 'read a; read b; echo $((a * b)); echo oops >&2; exit 3'");
  sp::Popen q({"sh", "-c", "read a; read b; echo $((a * b)); echo oops >&2; exit 3"},
              {.stdin = sp::PIPE, .stdout = sp::PIPE, .stderr = sp::PIPE});
  auto [product, complaint] = q.communicate("6\n7\n");
  std::printf("stdout: %s", product.c_str());
  std::printf("stderr: %s", complaint.c_str());
  std::printf("Exit code: %d\n", *q.returncode());

  std::puts("$ run(['tr', 'a-z', 'A-Z'], input=..., capture_output=True)");
  auto r = sp::run({"tr", "a-z", "A-Z"}, {.input = "hello, subprocess\n", .capture_output = true});
  std::printf("%s", r.stdout.c_str());
  std::printf("Exit code: %d\n", r.returncode);
}
