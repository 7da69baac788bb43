// ticket_lock — the seeds' ticket-grabbing program: a JSON file `db` holds the number of
// tickets left; 15 buyer processes each *search* (read the count, no lock), then *buy*
// under one mp::Lock (read, decrement if positive, write back).
//
// What it shows: the Lock turns the read-modify-write of a shared file into a critical
// section. Everyone may see tickets while searching, but exactly `count` tickets are sold
// — never more — and the file ends at 0. (Remove the lock and several buyers sell the same
// ticket.) Usage: ticket_lock [count]   (default 3)
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "mp/process.hpp"
#include "mp/synchronize.hpp"

using namespace std::chrono_literals;

namespace {

int read_count(const std::string& db) {
  std::ifstream f(db);
  return nlohmann::json::parse(f).at("count").get<int>();
}

// Searchers read the file without the lock, so it is replaced atomically (write a new file,
// rename it over the old one): a reader sees the old or the new count, never an empty file.
// Only one buyer writes at a time (under the lock), so one temporary name is enough.
void write_count(const std::string& db, int count) {
  std::string tmp = db + ".tmp";
  {
    std::ofstream f(tmp, std::ios::trunc);
    f << nlohmann::json{{"count", count}};
  }
  std::filesystem::rename(tmp, db);
}

void search(int buyer, const std::string& db) {
  std::this_thread::sleep_for(10ms);  // simulated network I/O
  std::printf("buyer %2d sees %d ticket(s) left\n", buyer, read_count(db));
}

void buy(int buyer, const std::string& db) {
  int count = read_count(db);
  std::this_thread::sleep_for(5ms);  // simulated network I/O, inside the critical section
  if (count > 0) {
    write_count(db, count - 1);
    std::printf("buyer %2d (pid %d) bought a ticket\n", buyer, static_cast<int>(::getpid()));
  } else {
    std::printf("buyer %2d: sold out!\n", buyer);
  }
}

void task(int buyer, mp::Lock lock, const std::string& db) {
  search(buyer, db);
  std::scoped_lock guard(lock);  // Python: with lock:
  buy(buyer, db);
}

}  // namespace

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // one line per write: output of many processes stays readable
  int tickets = argc > 1 ? std::atoi(argv[1]) : 3;

  char dir_template[] = "/tmp/mp-ticket-XXXXXX";
  if (!::mkdtemp(dir_template)) {
    std::perror("mkdtemp");
    return 1;
  }
  std::filesystem::path dir = dir_template;
  std::string db = (dir / "db").string();
  write_count(db, tickets);
  std::printf("db starts with count=%d; 15 buyers\n", tickets);

  mp::Lock lock;  // created in the parent so that every buyer gets the same lock
  std::vector<mp::Process> buyers;
  for (int i = 0; i < 15; ++i) buyers.emplace_back(task, i, lock, db);
  for (auto& p : buyers) p.start();
  for (auto& p : buyers) p.join();

  int left = read_count(db);
  std::printf("db ends with count=%d (%d ticket(s) sold)\n", left, tickets - left);
  std::filesystem::remove_all(dir);
  return 0;
}
