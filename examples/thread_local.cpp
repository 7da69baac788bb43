// Seed: "ThreadLocal" — one global ThreadLocal object, but each thread binds and sees its
// own student, so process_student() needs no argument and no lock.
#include <cstdio>
#include <string>

#include "mp/threading.hpp"

namespace {

mp::ThreadLocal<std::string> local_school;

void process_student() {
  const std::string& std_name = *local_school;  // this thread's student
  std::printf("Hello, %s (in %s)\n", std_name.c_str(), mp::current_thread().name().c_str());
}

void process_thread(const std::string& name) {
  local_school.set(name);
  process_student();
}

}  // namespace

int main() {
  mp::Thread thread1({.name = "Thread-1"}, process_thread, std::string("Willard"));
  mp::Thread thread2({.name = "Thread-2"}, process_thread, std::string("WenYu"));
  thread1.start();
  thread2.start();
  thread1.join();
  thread2.join();
  std::printf("main thread has its own (empty) value: has_value() = %s\n", local_school.has_value() ? "true" : "false");
}
