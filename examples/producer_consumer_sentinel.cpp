// Seed 000, "生产者消费者模型2": three producers, two consumers, one queue. When the producers
// are done the parent puts one sentinel per consumer (Python's None: here an empty
// std::optional), so each consumer stops; every item is eaten exactly once.
#include <mp/process.hpp>
#include <mp/queue.hpp>

#include <chrono>
#include <cstdio>
#include <optional>
#include <random>
#include <string>
#include <thread>

using namespace std::chrono_literals;
using Item = std::optional<std::string>;

void pause_a_little() {
  thread_local std::mt19937 rng(std::random_device{}());
  std::this_thread::sleep_for(std::chrono::milliseconds(1 + rng() % 20));  // simulated IO
}

void producer(mp::Queue<Item> q, std::string name, std::string food) {
  for (int i = 0; i < 3; ++i) {
    std::printf("%s produced %s%d\n", name.c_str(), food.c_str(), i);
    pause_a_little();
    q.put(food + std::to_string(i));
  }
}

void consumer(mp::Queue<Item> q, std::string name) {
  for (;;) {
    Item item = q.get(5s);  // as in the seed: give up (mp::Empty) after 5 s of silence
    if (!item) {
      std::printf("%s got the sentinel and stops\n", name.c_str());
      return;
    }
    pause_a_little();
    std::printf("%s ate %s\n", name.c_str(), item->c_str());
  }
}

int main() {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  mp::Queue<Item> q;
  mp::Process p1(producer, q, "rocky", "baozi");
  mp::Process p2(producer, q, "mac", "jiucai");
  mp::Process p3(producer, q, "chengge", "dasuan");
  mp::Process c1(consumer, q, "shanjige");
  mp::Process c2(consumer, q, "haonange");
  p1.start();
  p2.start();
  p3.start();
  c1.start();
  c2.start();
  p1.join();
  p2.join();
  p3.join();         // every item is in the queue now
  q.put(std::nullopt);  // one sentinel per consumer
  q.put(std::nullopt);
  c1.join();
  c2.join();
  std::puts("all producers and consumers finished");
}
