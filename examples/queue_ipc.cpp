// Seed 004, "进程间通信": the parent makes a queue and hands it to two children; one writes
// W I L L A R D, the other reads forever and is terminated at the end.
// The reader marks each value done (a JoinableQueue), so the parent can wait until every
// value was read and printed before it terminates the endless reader — in the seed that
// was left to luck.
#include <mp/process.hpp>
#include <mp/queue.hpp>

#include <chrono>
#include <cstdio>
#include <random>
#include <string>
#include <thread>

void writer(mp::JoinableQueue<std::string> q) {
  std::printf("Process to write: %d\n", mp::current_process().pid);
  std::mt19937 rng(std::random_device{}());
  for (const char* value : {"W", "I", "L", "L", "A", "R", "D"}) {
    std::printf("Put %s to queue...\n", value);
    q.put(value);
    std::this_thread::sleep_for(std::chrono::milliseconds(rng() % 20));  // simulated work
  }
}

void reader(mp::JoinableQueue<std::string> q) {
  std::printf("Process to read: %d\n", mp::current_process().pid);
  for (;;) {
    std::string value = q.get();
    std::printf("Get %s from queue.\n", value.c_str());
    q.task_done();
  }
}

int main() {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  mp::JoinableQueue<std::string> q;  // the parent creates the queue and passes it on
  mp::Process pw(writer, q);
  mp::Process pr(reader, q);
  pw.start();
  pr.start();
  pw.join();  // wait for the writer
  q.join();   // and for the reader to have handled every value
  pr.terminate();  // the reader loops forever: stop it
  pr.join();
  std::printf("reader terminated: exitcode %d\n", pr.exitcode().value_or(0));
}
