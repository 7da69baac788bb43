// Seed 000, "生产者消费者模型03" (and 001's JoinableQueue): consumers are daemon processes
// that loop forever calling task_done() after each item; the parent waits for the
// producers, then q.join() returns once every item was processed, and the parent's exit
// ends the daemon consumers — no sentinels needed.
#include <mp/process.hpp>
#include <mp/queue.hpp>

#include <chrono>
#include <cstdio>
#include <random>
#include <string>
#include <thread>

void pause_a_little() {
  thread_local std::mt19937 rng(std::random_device{}());
  std::this_thread::sleep_for(std::chrono::milliseconds(1 + rng() % 20));  // simulated IO
}

void producer(mp::JoinableQueue<std::string> q, std::string name, std::string food) {
  for (int i = 0; i < 3; ++i) {
    std::printf("%s produced %s%d\n", name.c_str(), food.c_str(), i);
    pause_a_little();
    q.put(food + std::to_string(i));
  }
}

void consumer(mp::JoinableQueue<std::string> q, std::string name) {
  for (;;) {
    std::string item = q.get();
    pause_a_little();
    std::printf("%s ate %s\n", name.c_str(), item.c_str());
    q.task_done();  // "I took an item out and finished with it"
  }
}

int main() {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  mp::JoinableQueue<std::string> q;
  mp::Process p1(producer, q, "rocky", "baozi");
  mp::Process p2(producer, q, "mac", "jiucai");
  mp::Process p3(producer, q, "nick", "suanni");
  mp::Process c1(consumer, q, "chengge");
  mp::Process c2(consumer, q, "haonange");
  c1.daemon(true);
  c2.daemon(true);
  p1.start();
  p2.start();
  p3.start();
  c1.start();
  c2.start();
  p1.join();
  p2.join();
  p3.join();  // production finished
  q.join();   // and every item was consumed: task_done() was called 9 times
  std::puts("q.join() returned: all 9 items done");
  std::puts("main exits");  // the daemon consumers end with the main process
}
