// Tests of mp/managers_python.hpp: BaseManager with Protocol::python against real python3
// peers (multiprocessing.managers), in both directions, over TCP on 127.0.0.1.
//
// Python peers are started with posix_spawn; the test waits for the line a Python server
// prints once it listens (never a sleep). Every peer is killed and reaped by its guard.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "helpers/python_peer.hpp"
#include "helpers/fork_mid_call.hpp"
#include "helpers/relay.hpp"
#include "helpers/support.hpp"
#include "mp/managers_python.hpp"
#include "mp/process.hpp"
#include "mp/synchronize.hpp"

extern char** environ;

using namespace std::chrono_literals;
namespace py = mp::managers::python;
namespace pk = mp::pickle;
using mp::managers::Protocol;

namespace {

using mp_test::PythonPeer;

bool have_python() {
  return mp_test::run("python3 -c 'import multiprocessing.managers'").exit_code == 0;
}

#define REQUIRE_PYTHON() \
  if (!have_python()) GTEST_SKIP() << "python3 with multiprocessing is not available"

// A Python BaseManager server (get_server().serve_forever()) with queues and an object
// whose methods raise, on a free port. Prints "ready host:port" once it listens.
constexpr const char* kPyServer = R"PY(
import sys, queue
from multiprocessing.managers import BaseManager
class CustomError(Exception):
    pass
class Boom:
    def fail(self, kind):
        if kind == 'value': raise ValueError('bad value')
        if kind == 'key': raise KeyError('missing')
        if kind == 'index': raise IndexError('out of range')
        raise CustomError('custom ' + kind)
    def echo(self, *args, **kwds):
        return (args, kwds)
tasks = queue.Queue()
small = queue.Queue(maxsize=1)
boom = Boom()
class M(BaseManager):
    pass
M.register('get_task_queue', callable=lambda: tasks)
M.register('get_small_queue', callable=lambda: small)
M.register('get_boom', callable=lambda: boom)
m = M(address=('127.0.0.1', 0), authkey=sys.argv[1].encode())
s = m.get_server()
print('ready %s:%d' % s.address, flush=True)
s.serve_forever()
)PY";

/// Waits until a server script prints "ready <address>": the address ("" if it ended first).
std::string start_python_server(PythonPeer& py) { return py.wait_for("ready "); }

mp::BaseManager python_manager(const std::string& address, std::string key = "secret") {
  return mp::BaseManager(address, std::move(key), {.protocol = Protocol::python});
}

/// Each test gets its own python3 BaseManager server (kPyServer, authkey "secret") at
/// `address`; skipped without python3.
class PythonServer : public ::testing::Test {
 protected:
  void SetUp() override {
    REQUIRE_PYTHON();
    py.emplace(std::vector<std::string>{"-c", kPyServer, "secret"});
    address = start_python_server(*py);
    ASSERT_FALSE(address.empty()) << py->all();
  }
  std::optional<PythonPeer> py;
  std::string address;
};

struct Order {
  std::string item;
  int qty = 0;
  std::optional<double> price;
  template <class A>
  void serialize(A& ar) {
    ar(item, qty, price);
  }
  bool operator==(const Order&) const = default;
};

}  // namespace

// --- a C++ client of a Python manager --------------------------------------------------

TEST_F(PythonServer, CppClientPutsAndGetsOnARegisteredPythonQueue) {
  mp::BaseManager m(address, "secret", {.protocol = Protocol::python});
  m.connect();
  auto q = m.get<py::QueueProxy<int>>("get_task_queue");
  EXPECT_EQ(q.token().typeid_name, "get_task_queue");
  EXPECT_TRUE(q.empty());
  q.put(1);
  q.put(2);
  q.put(3, 5s);
  EXPECT_EQ(q.qsize(), 3u);
  EXPECT_FALSE(q.empty());
  EXPECT_FALSE(q.full());
  EXPECT_EQ(q.get(), 1);
  EXPECT_EQ(q.get(60s), 2);
  EXPECT_EQ(q.get_nowait(), 3);
  EXPECT_THROW((void)q.get_nowait(), mp::Empty);
  EXPECT_THROW((void)q.get(10ms), mp::Empty);   // Python's queue.Empty after the timeout
  EXPECT_THROW((void)q.get(-5s), mp::Empty);    // a negative timeout counts as zero
  m.shutdown();
  EXPECT_EQ(py->finish(), 0) << py->all();      // serve_forever's sys.exit(0)
}

TEST_F(PythonServer, EveryPickledKindRoundTripsThroughAPythonQueue) {
  auto m = python_manager(address);
  auto q = m.get<py::QueueProxy<>>("get_task_queue");
  pk::Value everything = pk::Value::tuple(
      {pk::Value(), true, std::int64_t{-1} << 62, 2.5, "str ü", pk::Bytes{std::string("\0\xff", 2)},
       pk::Value::list({1, 2}), pk::Value::dict({{"k", pk::Value::tuple({})}, {3, "three"}}),
       pk::Value::set({1, "a"}), pk::Value::frozenset({2}), pk::exception("ValueError", "as data")});
  q.put(everything);
  EXPECT_EQ(q.get(60s), everything);

  auto orders = m.get<py::QueueProxy<Order>>("get_task_queue");
  orders.put(Order{"tea", 2, 1.25});
  orders.put(Order{"cake", 1, std::nullopt});
  EXPECT_EQ(orders.get(60s), (Order{"tea", 2, 1.25}));
  EXPECT_EQ(orders.get(60s), (Order{"cake", 1, std::nullopt}));

  auto maps = m.get<py::QueueProxy<std::map<std::string, std::vector<int>>>>("get_task_queue");
  std::map<std::string, std::vector<int>> mv{{"a", {1, 2}}, {"b", {}}};
  maps.put(mv);
  EXPECT_EQ(maps.get(60s), mv);

  q.put("not an int");
  auto ints = m.get<py::QueueProxy<int>>("get_task_queue");
  EXPECT_THROW((void)ints.get(60s), pk::TypeError);  // the item was taken; it was not a T
}

TEST_F(PythonServer, FullBoundedPythonQueueRaisesFull) {
  auto m = python_manager(address);
  auto q = m.get<py::QueueProxy<int>>("get_small_queue");
  q.put(1);
  EXPECT_TRUE(q.full());
  EXPECT_THROW(q.put_nowait(2), mp::Full);
  EXPECT_THROW(q.put(2, 10ms), mp::Full);
  EXPECT_EQ(q.get(), 1);
}

TEST_F(PythonServer, PythonExceptionsArriveAsMpExceptions) {
  auto m = python_manager(address);
  auto boom = m.get<py::Proxy>("get_boom");
  EXPECT_EQ(boom.exposed(), (std::vector<std::string>{"echo", "fail"}));
  try {
    boom.callmethod("fail", {"value"});
    ADD_FAILURE() << "no exception";
  } catch (const mp::ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("bad value"), std::string::npos) << e.what();
  }
  EXPECT_THROW(boom.callmethod("fail", {"key"}), mp::KeyError);
  EXPECT_THROW(boom.callmethod("fail", {"index"}), mp::IndexError);
  try {
    boom.callmethod("fail", {"other"});
    ADD_FAILURE() << "no exception";
  } catch (const mp::RemoteError& e) {
    EXPECT_EQ(e.type_name(), "__main__.CustomError");
    EXPECT_NE(std::string(e.what()).find("custom other"), std::string::npos) << e.what();
  }
  // Not exposed: Python answers with a traceback of its AttributeError.
  try {
    boom.callmethod("no_such_method");
    ADD_FAILURE() << "no exception";
  } catch (const mp::RemoteError& e) {
    EXPECT_NE(std::string(e.what()).find("AttributeError"), std::string::npos) << e.what();
  }
  // Positional and keyword arguments reach Python as given.
  pk::Value r = boom.callmethod("echo", {1, "two"}, pk::Dict{{"three", 3.0}});
  EXPECT_EQ(r, pk::Value::tuple({pk::Value::tuple({1, "two"}), pk::Value::dict({{"three", 3.0}})}));
  // _getvalue(): the referent itself, as an object description (never instantiated).
  pk::Value v = boom.getvalue();
  ASSERT_TRUE(v.is_object()) << v.repr();
  EXPECT_EQ(v.as_object().type.dotted(), "__main__.Boom");
  EXPECT_NE(boom.str().find("Boom object"), std::string::npos) << boom.str();
  // A typeid the server does not have: Python's KeyError, as a traceback.
  EXPECT_THROW((void)m.get<py::Proxy>("get_nothing"), mp::RemoteError);
}

TEST_F(PythonServer, WrongAuthkeyRaisesAuthenticationError) {
  auto wrong = python_manager(address, "not the secret");
  EXPECT_THROW(wrong.connect(), mp::AuthenticationError);
  EXPECT_THROW((void)wrong.get<py::QueueProxy<int>>("get_task_queue"), mp::AuthenticationError);
  auto right = python_manager(address);  // the server is unharmed
  right.connect();
  auto q = right.get<py::QueueProxy<int>>("get_task_queue");
  q.put(5);
  EXPECT_EQ(q.get(), 5);
}

TEST_F(PythonServer, LastProxyCopyGivesTheReferenceBack) {
  auto m = python_manager(address);
  EXPECT_EQ(m.number_of_objects(), 0u);
  {
    auto a = m.get<py::QueueProxy<int>>("get_task_queue");
    EXPECT_EQ(m.number_of_objects(), 1u);
    std::optional<py::QueueProxy<int>> b = a;
    a = {};
    b->put(1);  // the copy still holds the reference
    EXPECT_EQ(m.number_of_objects(), 1u);
    EXPECT_EQ(b->get(), 1);
  }
  EXPECT_EQ(m.number_of_objects(), 0u);  // decref'd when the last copy went
}

TEST_F(PythonServer, ForkedChildTakesItsOwnReferenceAndConnection) {
  auto m = python_manager(address);
  auto q = m.get<py::QueueProxy<int>>("get_task_queue");
  q.put(1);  // the parent's channel exists before the fork
  mp::Process child([&] {
    q.put(q.get() + 41);  // the child's own connection, and its own reference
  });
  child.start();
  ASSERT_TRUE(child.join(60s));
  EXPECT_EQ(child.exitcode(), 0);
  EXPECT_EQ(q.get(60s), 42);
  EXPECT_EQ(m.number_of_objects(), 1u);  // the child gave back only its own reference
}

// Regression (issue 19), over CPython's protocol: children forked while a thread of the
// parent is inside a call (its connection held at a relay) use the proxy and finish;
// they used to hang on the proxy's mutex, copied locked.
TEST_F(PythonServer, ChildrenForkedWhileAThreadIsInsideAProxyCallCanUseTheProxy) {
  mp_test::Relay relay(address, /*held=*/2);  // 1: create; 2: the thread's first call
  auto m = python_manager(relay.address());
  auto q = m.get<py::QueueProxy<int>>("get_task_queue");
  mp_test::children_forked_mid_call_put(q, relay);
  EXPECT_EQ(m.number_of_objects(), 1u);  // each child gave back only its own reference
}

TEST_F(PythonServer, EachThreadCallsOnItsOwnConnection) {
  auto m = python_manager(address);
  auto q = m.get<py::QueueProxy<int>>("get_task_queue");
  int got = 0;
  // With one shared connection, the put below would queue behind the blocked get forever.
  std::thread getter([&] { got = q.get(); });
  q.put(7);
  getter.join();
  EXPECT_EQ(got, 7);
}

TEST(PythonSyncManager, TypesAreUsableThroughGenericProxies) {
  REQUIRE_PYTHON();
  constexpr const char* kSync = R"PY(
import sys
from multiprocessing.managers import SyncManager
m = SyncManager(address=('127.0.0.1', 0), authkey=b'secret')
s = m.get_server()
print('ready %s:%d' % s.address, flush=True)
s.serve_forever()
)PY";
  PythonPeer py({"-c", kSync});
  std::string address = start_python_server(py);
  ASSERT_FALSE(address.empty()) << py.all();
  auto m = python_manager(address);
  auto q = m.get<py::QueueProxy<std::string>>("Queue");  // SyncManager.Queue(): a queue.Queue
  q.put("through SyncManager");
  EXPECT_EQ(q.get(60s), "through SyncManager");
  auto d = m.get<py::Proxy>("dict");  // SyncManager.dict(): DictProxy's exposed methods
  d.callmethod("__setitem__", {"a", 1});
  d.callmethod("update", {pk::Value::dict({{"b", 2}})});
  EXPECT_EQ(d.callmethod("__getitem__", {"a"}), pk::Value(1));
  EXPECT_EQ(d.callmethod("__len__"), pk::Value(2));
  EXPECT_THROW(d.callmethod("__getitem__", {"zzz"}), mp::KeyError);
  EXPECT_EQ(d.getvalue(), pk::Value::dict({{"a", 1}, {"b", 2}}));
}

// --- Python clients of a C++ manager -----------------------------------------------------

namespace {

// A Python client of the C++ server: BaseManager.register(typeid) + connect(), then queue
// calls as the seeds' worker makes them. Prints one line per check.
constexpr const char* kPyClient = R"PY(
import sys, queue
from multiprocessing.managers import BaseManager
class M(BaseManager):
    pass
for name in ('get_task_queue', 'get_small_queue', 'get_nothing'):
    M.register(name)
h, p = sys.argv[1].rsplit(':', 1)
m = M(address=(h, int(p)), authkey=sys.argv[2].encode())
try:
    m.connect()
except Exception as e:
    print('connect failed:', type(e).__name__, flush=True)
    sys.exit(0)
q = m.get_task_queue()
q.put(5); q.put('text'); q.put({'k': [1, 2.5, None]}); q.put((b'raw', True))
print('qsize', q.qsize(), q.empty(), q.full())
print('got', repr(q.get()), repr(q.get(timeout=1)), repr(q.get(True, 1)), repr(q.get_nowait()))
try:
    q.get(timeout=0.01)
except queue.Empty:
    print('get raised queue.Empty')
try:
    q.get_nowait()
except queue.Empty:
    print('get_nowait raised queue.Empty')
s = m.get_small_queue()
s.put(1)
print('small full', s.full())
try:
    s.put(2, timeout=0.01)
except queue.Full:
    print('put raised queue.Full')
try:
    s.put_nowait(2)
except queue.Full:
    print('put_nowait raised queue.Full')
try:
    q.get(timeout=-1)
except ValueError as e:
    print('ValueError:', e)
try:
    q.put()
except TypeError as e:
    print('TypeError:', e)
print('str', str(q))
try:
    m.get_nothing()
except Exception as e:
    print('unknown typeid:', type(e).__name__)
for i in range(4):
    q.task_done()
q.join()
print('joined')
try:
    q.task_done()
except ValueError:
    print('task_done raised ValueError')
q.put([1, 'from python'])
print('objects', m._number_of_objects())
print('done', flush=True)
)PY";

/// A C++ server for Python clients: a task queue and a bounded one (fresh for each test).
void register_queues(mp::BaseManager& m) {
  auto tasks = std::make_shared<py::Queue>();
  auto small = std::make_shared<py::Queue>(1);
  m.register_<py::Queue>("get_task_queue", [tasks] { return tasks; });
  m.register_<py::Queue>("get_small_queue", [small] { return small; });
}

}  // namespace

TEST(CppServer, PythonClientUsesRegisteredQueuesWithPythonSemantics) {
  REQUIRE_PYTHON();
  mp::BaseManager m("127.0.0.1:0", "secret", {.protocol = Protocol::python});
  register_queues(m);
  m.start();
  PythonPeer py({"-c", kPyClient, m.address(), "secret"});
  EXPECT_EQ(py.finish(), 0) << py.all();
  const std::string& out = py.all();
  for (const char* expected : {
           "qsize 4 False False\n",
           "got 5 'text' {'k': [1, 2.5, None]} (b'raw', True)\n",
           "get raised queue.Empty\n",
           "get_nowait raised queue.Empty\n",
           "small full True\n",
           "put raised queue.Full\n",
           "put_nowait raised queue.Full\n",
           "ValueError: 'timeout' must be a non-negative number\n",
           "TypeError: put() missing required argument: 'item'\n",
           "str <mp python::Queue object at",
           "unknown typeid: RemoteError\n",
           "joined\n",
           "task_done raised ValueError\n",
           "objects 2\n",
           "done\n",
       })
    EXPECT_NE(out.find(expected), std::string::npos) << "missing: " << expected << "\n" << out;
  // What Python left in the queue reaches C++; Python's proxies gave their references back.
  auto q = m.get<py::QueueProxy<std::pair<int, std::string>>>("get_task_queue");
  EXPECT_EQ(q.get(60s), (std::pair<int, std::string>{1, "from python"}));
  EXPECT_EQ(m.number_of_objects(), 1u);
}

TEST(CppServer, PythonClientWithWrongAuthkeyIsRefusedAndTheServerSurvives) {
  REQUIRE_PYTHON();
  mp::BaseManager m("127.0.0.1:0", "secret", {.protocol = Protocol::python});
  register_queues(m);
  m.start();
  {
    PythonPeer py({"-c", kPyClient, m.address(), "wrong"});
    EXPECT_EQ(py.finish(), 0) << py.all();
    EXPECT_NE(py.all().find("connect failed: AuthenticationError"), std::string::npos) << py.all();
  }
  PythonPeer py({"-c", kPyClient, m.address(), "secret"});
  EXPECT_EQ(py.finish(), 0) << py.all();
  EXPECT_NE(py.all().find("done"), std::string::npos) << py.all();
}

TEST(CppServer, InProcessServerStopsOnAClientShutdown) {
  REQUIRE_PYTHON();
  mp::BaseManager m("127.0.0.1:0", "secret", {.protocol = Protocol::python});
  register_queues(m);
  mp::Server server = m.get_server();
  std::thread serving([&] { server.serve_forever(); });
  {
    PythonPeer py({"-c", kPyClient, server.address(), "secret"});
    EXPECT_EQ(py.finish(), 0) << py.all();
    EXPECT_NE(py.all().find("done"), std::string::npos) << py.all();
  }
  auto client = python_manager(server.address());
  client.connect();
  auto q = client.get<py::QueueProxy<std::vector<pk::Value>>>("get_task_queue");
  EXPECT_EQ(q.get(60s), (std::vector<pk::Value>{1, "from python"}));
  client.shutdown();  // serve_forever returns
  serving.join();
}

TEST(CppServer, CppClientAndCppServerSpeakThePythonProtocolToo) {
  mp::BaseManager m("", "secret", {.protocol = Protocol::python});  // a private Unix socket
  register_queues(m);
  m.start();
  auto q = m.get<py::QueueProxy<std::string>>("get_task_queue");
  q.put("over a Unix socket");
  EXPECT_EQ(q.get(), "over a Unix socket");
  EXPECT_THROW((void)q.get(10ms), mp::Empty);
  auto small = m.get<py::QueueProxy<int>>("get_small_queue");
  small.put(1);
  EXPECT_THROW(small.put(2, 10ms), mp::Full);
  q.task_done();
  EXPECT_THROW(q.task_done(), mp::ValueError);
  EXPECT_THROW((void)q.callmethod("put", {}), mp::RemoteError);  // TypeError: Python's own kind
  EXPECT_THROW((void)q.callmethod("not_exposed"), mp::RemoteError);
  EXPECT_THROW((void)m.get<py::Proxy>("get_nothing"), mp::RemoteError);
  EXPECT_EQ(m.number_of_objects(), 2u);
}

namespace {
// The user-referent example of docs/interop.md.
class Counter final : public py::Referent {
 public:
  std::vector<std::string> exposed() const override { return {"add", "value"}; }
  pk::Value call(const py::Call& c) override {
    std::lock_guard g(mu_);
    if (c.method == "add") {
      n_ += c.bind({{"n", pk::Value(1)}})[0].as_int();
      return {};
    }
    if (c.method == "value") {
      (void)c.bind({});
      return n_;
    }
    throw mp::AttributeError(std::string(c.method));
  }

 private:
  std::mutex mu_;
  std::int64_t n_ = 0;
};

constexpr const char* kPyCounterClient = R"PY(
import sys
from multiprocessing.managers import BaseManager
class M(BaseManager):
    pass
M.register('get_counter')
h, p = sys.argv[1].rsplit(':', 1)
m = M(address=(h, int(p)), authkey=b'secret')
m.connect()
c = m.get_counter()
c.add(n=5); c.add(); c.add(2)
print('value', c.value())
for args, kwds in (((1, 2), {}), ((), {'m': 1}), ((1,), {'n': 1}), (('x',), {})):
    try:
        c.add(*args, **kwds)
    except TypeError as e:
        print('TypeError:', e)
    except Exception as e:
        print('other:', type(e).__name__, e)
try:
    c._callmethod('secret_method')
except Exception as e:
    print('not exposed:', type(e).__name__)
print('value', c.value(), flush=True)
)PY";
}  // namespace

TEST(CppServer, UserReferentBindsPythonArgumentsAndRaisesTypeError) {
  REQUIRE_PYTHON();
  mp::BaseManager m("127.0.0.1:0", "secret", {.protocol = Protocol::python});
  auto counter = std::make_shared<Counter>();
  m.register_<Counter>("get_counter", [counter] { return counter; });
  mp::Server server = m.get_server();
  std::thread serving([&] { server.serve_forever(); });
  PythonPeer py({"-c", kPyCounterClient, server.address()});
  EXPECT_EQ(py.finish(), 0) << py.all();
  const std::string& out = py.all();
  for (const char* expected : {"value 8\n", "TypeError: add() takes at most 1 arguments (2 given)\n",
                               "TypeError: add() got an unexpected keyword argument 'm'\n",
                               "TypeError: add() got multiple values for argument 'n'\n",
                               "not exposed: RemoteError\n"})
    EXPECT_NE(out.find(expected), std::string::npos) << "missing: " << expected << "\n" << out;
  // add('x'): the C++ conversion failed; Python sees TypeError too.
  EXPECT_NE(out.find("TypeError: mp::pickle"), std::string::npos) << out;
  EXPECT_EQ(mp_test::count(out, "value 8\n"), 2) << out;
  server.stop();
  serving.join();
}

// --- protocol mismatches are caught early -------------------------------------------------

TEST(Protocol, MixingNativeAndPythonTypesIsAValueError) {
  mp::BaseManager native("", "k");
  EXPECT_THROW(native.register_<py::Queue>("q", [] { return std::make_shared<py::Queue>(); }), mp::ValueError);
  EXPECT_THROW((void)native.get<py::QueueProxy<int>>("q"), mp::ValueError);
  mp::BaseManager python("", "k", {.protocol = Protocol::python});
  EXPECT_THROW(python.register_<mp::managed::Queue<int>>("q", [] { return std::make_shared<mp::managed::Queue<int>>(0); }),
               mp::ValueError);
  EXPECT_THROW((void)python.get<mp::QueueProxy<int>>("q"), mp::ValueError);
  EXPECT_EQ(python.protocol(), Protocol::python);
  EXPECT_EQ(native.protocol(), Protocol::native);
}

// --- the seeds' distributed master/worker, run mixed --------------------------------------

namespace {
std::string script(const char* name) { return std::string(MP_SOURCE_DIR) + "/examples/python/" + name; }

/// Every "n * n = m" result is right and names a task the master put; there are 10.
void expect_squares(const std::string& master_out, const std::string& result_prefix) {
  EXPECT_EQ(mp_test::count(master_out, "Put task "), 10) << master_out;
  EXPECT_EQ(mp_test::count(master_out, result_prefix), 10) << master_out;
  for (std::size_t p = master_out.find("Put task "); p != std::string::npos; p = master_out.find("Put task ", p + 1)) {
    long long n = std::stoll(master_out.substr(p + 9));
    EXPECT_NE(master_out.find(result_prefix + std::to_string(n) + " * " + std::to_string(n) + " = " +
                              std::to_string(n * n)),
              std::string::npos)
        << n << "\n" << master_out;
  }
}
}  // namespace

TEST(MixedExamples, PythonMasterWithCppWorkers) {
  REQUIRE_PYTHON();
  PythonPeer master({script("task_master.py"), "127.0.0.1:0"});
  std::string address = master.wait_for("Master listening on ");
  ASSERT_FALSE(address.empty()) << master.all();

  auto intruder = mp_test::run(mp_test::example("distributed_worker_py") + " " + address + " wrong-key");
  EXPECT_EQ(intruder.exit_code, 3) << intruder.out;
  EXPECT_NE(intruder.out.find("Authentication failed"), std::string::npos) << intruder.out;

  auto worker = mp_test::run(mp_test::example("distributed_worker_py") + " " + address);
  EXPECT_EQ(worker.exit_code, 0) << worker.out;
  EXPECT_EQ(mp_test::count(worker.out, "Run task"), 10) << worker.out;
  EXPECT_NE(worker.out.find("Worker Exit."), std::string::npos) << worker.out;

  EXPECT_EQ(master.finish(), 0) << master.all();
  expect_squares(master.all(), "Result:");
  EXPECT_NE(master.all().find("Master Exit."), std::string::npos) << master.all();
}

TEST(MixedExamples, CppMasterWithThePythonWorker) {
  REQUIRE_PYTHON();
  FILE* master = ::popen((mp_test::example("distributed_master_py") + " 0 2>&1").c_str(), "r");
  ASSERT_NE(master, nullptr);
  std::string out, address;
  char line[512];
  while (std::fgets(line, sizeof line, master)) {  // its address, then its 10 tasks
    out += line;
    std::string s(line);
    if (s.starts_with("Master listening on ")) address = s.substr(20, s.find(' ', 20) - 20);
    if (s.starts_with("Try get results")) break;
  }
  if (address.empty()) ::pclose(master);
  ASSERT_FALSE(address.empty()) << out;

  auto worker = mp_test::run("python3 -u '" + script("task_worker.py") + "' " + address);
  EXPECT_EQ(worker.exit_code, 0) << worker.out;
  EXPECT_EQ(mp_test::count(worker.out, "Run task"), 10) << worker.out;
  EXPECT_NE(worker.out.find("Worker Exit."), std::string::npos) << worker.out;

  while (std::fgets(line, sizeof line, master)) out += line;
  int st = ::pclose(master);
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << out;
  expect_squares(out, "Result: ");
  EXPECT_NE(out.find("Master Exit. (10 results)"), std::string::npos) << out;
}

TEST(MixedExamples, TourModesRunTheOtherSideThemselves) {
  REQUIRE_PYTHON();
  auto master = mp_test::run(mp_test::example("distributed_master_py"));
  EXPECT_EQ(master.exit_code, 0) << master.out;
  EXPECT_EQ(mp_test::count(master.out, "[python worker] Run task"), 10) << master.out;
  expect_squares(master.out, "Result: ");

  auto worker = mp_test::run(mp_test::example("distributed_worker_py"));
  EXPECT_EQ(worker.exit_code, 0) << worker.out;
  EXPECT_EQ(mp_test::count(worker.out, "Run task"), 10) << worker.out;
  EXPECT_NE(worker.out.find("Python master exit status 0"), std::string::npos) << worker.out;
  // "Put task n" lines are the master's (prefixed), results too.
  expect_squares(worker.out, "Result:");
}
