// Managers under StartMethod::forkserver (issue 18): the server process is forked by the
// fork server, with its registrations sent as code addresses, so a lock another thread of
// the owner holds while the manager starts is free in the server.
#include <gtest/gtest.h>

#include <mp/managers.hpp>
#include <mp/managers_python.hpp>
#include <mp/process.hpp>

#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unistd.h>

#include "helpers/forkserver.hpp"
#include "helpers/support.hpp"

using namespace std::chrono_literals;
namespace py = mp::managers::python;

namespace {

std::mutex g_registry_mutex;  // held by a thread of the owner while the server starts

std::shared_ptr<mp::managed::Queue<int>> shared_queue() {
  std::lock_guard g(g_registry_mutex);  // the server's copy, as the fork server saw it: free
  static auto q = std::make_shared<mp::managed::Queue<int>>(0);
  return q;
}

using ManagerForkserver = mp_test::ForkserverTest;

}  // namespace

TEST_F(ManagerForkserver, ManagerServesEveryStandardTypeFromAServedProcess) {
  mp::Manager m;
  EXPECT_NE(mp_test::parent_of(m.server_pid()), ::getpid()) << "forked by the fork server, not by us";
  auto d = m.dict<std::string, int>();
  d.setitem("a", 1);
  auto l = m.list<int>({1, 2});
  l.append(3);
  auto q = m.Queue<std::string>();
  q.put("x");
  mp::Process child(
      [](mp::DictProxy<std::string, int> d, mp::ListProxy<int> l, mp::QueueProxy<std::string> q) {
        d.setitem("b", d.get("a") + 1);
        l.append(static_cast<int>(l.len()) + 1);
        q.put(q.get() + "y");
      },
      d, l, q);
  child.start();
  child.join();
  EXPECT_EQ(child.exitcode(), 0);
  EXPECT_EQ(d.get("b"), 2);
  EXPECT_EQ(l.len(), 4u);
  EXPECT_EQ(q.get(), "xy");
}

TEST_F(ManagerForkserver, RegistrationsAsFunctionsAndCaptureLessLambdasRunInTheServer) {
  mp_test::HeldLock held(g_registry_mutex);  // with fork, the server's copy of g_registry_mutex would stay locked for good
  mp::BaseManager m("", std::string("key"));
  m.register_<mp::managed::Queue<int>>("functions", shared_queue);
  m.register_<mp::managed::Queue<int>>("lambdas", [] { return shared_queue(); });
  m.start();
  auto a = m.get<mp::QueueProxy<int>>("functions");
  auto b = m.get<mp::QueueProxy<int>>("lambdas");
  a.put(7);
  EXPECT_EQ(b.get(), 7) << "both names serve the server's one queue";
  m.shutdown();
}

TEST_F(ManagerForkserver, PythonProtocolRegistrationsWork) {
  mp::BaseManager m("127.0.0.1:0", std::string("key"), {.protocol = mp::managers::Protocol::python});
  m.register_<py::Queue>("get_task_queue", [] {
    static auto q = std::make_shared<py::Queue>();
    return q;
  });
  m.start();
  auto q = m.get<py::QueueProxy<int>>("get_task_queue");
  q.put(41);
  EXPECT_EQ(q.get(), 41);
  m.shutdown();
}

TEST_F(ManagerForkserver, ARegistrationWithStateIsRefusedByNameAndNothingStarts) {
  auto q = std::make_shared<mp::managed::Queue<int>>(0);
  mp::BaseManager m("", std::string("key"));
  m.register_<mp::managed::Queue<int>>("get_q", [q] { return q; });
  int before = mp_test::child_processes();
  try {
    m.start();
    FAIL() << "a capturing registration was accepted under forkserver";
  } catch (const mp::ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("'get_q'"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("captureless"), std::string::npos) << e.what();
  }
  EXPECT_EQ(mp_test::child_processes(), before);
  EXPECT_EQ(m.server_pid(), 0);
}
