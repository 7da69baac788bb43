// semaphore_restaurant — the seeds' restaurant: 4 seats (Semaphore(4)), 10 customers.
// A customer takes a seat (acquire), eats, leaves (release); the next in line sits down.
//
// What it shows: a Semaphore bounds how many processes are inside a section at once.
// Each customer updates a shared mp::Value (under its lock) with how many are inside and
// the most ever seen; the program prints that maximum, which is never more than 4.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <thread>
#include <vector>

#include "mp/process.hpp"
#include "mp/sharedctypes.hpp"
#include "mp/synchronize.hpp"

using namespace std::chrono_literals;

namespace {

struct Room {
  int inside;
  int max_seen;
};

void customer(int i, mp::Semaphore seats, mp::Value<Room> room) {
  seats.acquire();
  Room r = room.update([](Room v) { return Room{v.inside + 1, std::max(v.max_seen, v.inside + 1)}; });
  std::printf("customer %d enters and eats (%d inside)\n", i, r.inside);
  std::this_thread::sleep_for(20ms);
  r = room.update([](Room v) { return Room{v.inside - 1, v.max_seen}; });
  std::printf("customer %d leaves (%d inside)\n", i, r.inside);
  seats.release();
}

}  // namespace

int main() {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  mp::Semaphore seats(4);
  mp::Value<Room> room(Room{0, 0});
  std::vector<mp::Process> customers;
  for (int i = 0; i < 10; ++i) customers.emplace_back(customer, i, seats, room);
  for (auto& p : customers) p.start();
  for (auto& p : customers) p.join();
  std::printf("at most %d customers were inside at once (4 seats)\n", room.value().max_seen);
  return 0;
}
