// Seeds 000/001/002, "队列": what put and get do on a bounded queue — full() and empty(),
// a put that times out raises Full, get_nowait on an empty queue raises Empty.
// Python's queue takes any object; a C++ queue is typed: a std::variant carries the seed's
// mix of a string, a list and an int.
#include <mp/queue.hpp>

#include <chrono>
#include <cstdio>
#include <string>
#include <variant>
#include <vector>

using namespace std::chrono_literals;

int main() {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);

  std::puts("-- case 1: Queue() keeps first-in first-out order");
  using Item = std::variant<std::string, std::vector<int>, int>;
  mp::Queue<Item> any;
  any.put(std::string("lu zhaoshan"));
  any.put(std::vector<int>{1, 2, 3});
  any.put(2);
  for (int i = 0; i < 3; ++i) {
    Item v = any.get();
    if (auto* s = std::get_if<std::string>(&v)) std::printf("get() -> '%s'\n", s->c_str());
    if (auto* l = std::get_if<std::vector<int>>(&v)) std::printf("get() -> [%d, %d, %d]\n", (*l)[0], (*l)[1], (*l)[2]);
    if (auto* n = std::get_if<int>(&v)) std::printf("get() -> %d\n", *n);
  }

  std::puts("-- Queue(5): full() and empty()");
  mp::Queue<int> q(5);
  q.put(1);
  q.put(2);
  std::printf("full() after 2 puts: %s\n", q.full() ? "true" : "false");
  q.put(3);
  q.put(4);
  q.put(5);
  std::printf("full() after 5 puts: %s\n", q.full() ? "true" : "false");
  try {
    q.put(6, 50ms);  // a plain q.put(6) would wait here until someone takes an item
  } catch (const mp::Full&) {
    std::puts("put(6, timeout=50ms) raised Full: the queue stayed full");
  }
  std::printf("get() -> %d\n", q.get());
  std::printf("get() -> %d\n", q.get());
  std::printf("empty(): %s\n", q.empty() ? "true" : "false");
  for (int i = 0; i < 3; ++i) std::printf("get() -> %d\n", q.get());
  std::printf("empty(): %s\n", q.empty() ? "true" : "false");
  try {
    q.get_nowait();
  } catch (const mp::Empty&) {
    std::puts("get_nowait() raised Empty: it never waits");
  }

  std::puts("-- case 2/3: Queue(3), a put with a timeout on a full queue");
  mp::Queue<int> q3(3);
  q3.put(1, 2s);
  q3.put(2, 2s);
  q3.put(3, 2s);
  try {
    q3.put(111, 50ms);
  } catch (const mp::Full&) {
    std::puts("put(111, timeout=50ms) raised Full");
  }

  std::puts("-- case 4: a get with a timeout on an empty queue");
  mp::Queue<std::string> q4;
  q4.put("yyy");
  std::printf("get() -> '%s'\n", q4.get().c_str());
  try {
    q4.get(50ms);
  } catch (const mp::Empty&) {
    std::puts("get(timeout=50ms) raised Empty");
  }

  std::puts("-- case 5/6: Queue(1), put_nowait on a full queue");
  mp::Queue<std::string> q1(1);
  q1.put("yyy");
  try {
    q1.put_nowait("666");
  } catch (const mp::Full&) {
    std::puts("put_nowait('666') raised Full");
  }
}
