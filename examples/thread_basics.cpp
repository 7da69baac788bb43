// Seed: "创建线程的两种方式" + "内存数据的共享问题" + "线程对象及其他方法".
// Two ways to make a thread (a function, or a subclass overriding run()), threads share
// the process's memory (a global changed by a thread is seen by main), and the thread
// object's helpers: current_thread(), active_count(), the pid shared by every thread.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <thread>

#include "mp/synchronize.hpp"
#include "mp/threading.hpp"

using namespace std::chrono_literals;

namespace {

void task(const std::string& name) {
  std::printf("%s is running\n", name.c_str());
  std::this_thread::sleep_for(20ms);
  std::printf("%s is over\n", name.c_str());
}

class MyThread : public mp::Thread {
 public:
  explicit MyThread(std::string who) : mp::Thread({.name = std::move(who)}) {}
  void run() override {
    std::printf("%s is running (subclass)\n", name().c_str());
    std::this_thread::sleep_for(20ms);
    std::printf("%s is over (subclass)\n", name().c_str());
  }
};

int money = 666;

void change_money() { money = 100; }

void report(const std::string& who, mp::Lock gate) {
  std::printf("%s: current_thread = %s, pid = %d\n", who.c_str(), mp::current_thread().name().c_str(), getpid());
  std::fflush(stdout);
  gate.acquire();  // yzy stays alive until main opens the gate
  gate.release();
}

}  // namespace

int main() {
  std::puts("-- way 1: a function as the target");
  mp::Thread t(task, std::string("zmm"));
  t.start();  // starting a thread is cheap: it is running before the next line
  std::puts("main: started zmm");
  t.join();

  std::puts("-- way 2: a subclass overriding run()");
  MyThread m("yzy");
  m.start();
  std::puts("main: started yzy");
  m.join();

  std::puts("-- threads share memory");
  std::printf("money before: %d\n", money);
  mp::Thread changer(change_money);
  changer.start();
  changer.join();
  std::printf("money after the thread ran: %d\n", money);

  std::puts("-- thread objects");
  mp::Lock open_gate, closed_gate;
  closed_gate.acquire();
  mp::Thread t1(report, std::string("zmm"), open_gate);
  mp::Thread t2(report, std::string("yzy"), closed_gate);
  t1.start();
  t2.start();
  t1.join();
  // t2 waits at its gate: main + t2 are alive.
  std::printf("active threads: %zu\n", mp::active_count());
  std::printf("main: current_thread = %s, pid = %d\n", mp::current_thread().name().c_str(), getpid());
  closed_gate.release();
  t2.join();
  std::printf("active threads after join: %zu\n", mp::active_count());
}
