// Seed 001, "进程间通信IPC机制": one child process puts 'hello baby', another gets it.
#include <mp/process.hpp>
#include <mp/queue.hpp>

#include <cstdio>
#include <string>

void producer(mp::Queue<std::string> q) {
  q.put("hello baby");
  std::puts("producer put: hello baby");
}

void consumer(mp::Queue<std::string> q) { std::printf("consumer got: %s\n", q.get().c_str()); }

int main() {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  mp::Queue<std::string> q;
  mp::Process p(producer, q);
  mp::Process c(consumer, q);
  p.start();
  c.start();
  p.join();
  c.join();
}
