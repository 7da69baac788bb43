// process_subclass — the object-oriented way: derive from mp::Process and override run().
//
// Seed: class Mypro(Process) whose __init__ takes a name and calls super().__init__(),
// and whose run() is what the child executes. p.start() starts the child (p.run() would
// just call the function here); p.join() waits for it before main goes on.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <thread>

#include <mp/process.hpp>

using namespace std::chrono_literals;

class Mypro : public mp::Process {
 public:
  // Constructor arguments become members, copied into the child by fork.
  Mypro(std::string person, int naps) : mp::Process({.name = person}), person_(std::move(person)), naps_(naps) {}

  void run() override {
    std::printf("%s: running in pid %d, current_process().name = %s\n", person_.c_str(), ::getpid(),
                mp::current_process().name.c_str());
    for (int i = 0; i < naps_; ++i) std::this_thread::sleep_for(50ms);
    std::printf("%s: done after %d naps\n", person_.c_str(), naps_);
  }

 private:
  std::string person_;
  int naps_;
};

int main() {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  Mypro p1("huangchun", 3);
  p1.start();  // the child runs p1.run()
  p1.join();   // main waits here until the child has finished
  std::printf("main: after join, %s exitcode %d\n", p1.name().c_str(), p1.exitcode().value());
}
