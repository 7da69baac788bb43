// The resource tracker: unlinks shared memory blocks whose creators died without unlink().
//
// Like Python's multiprocessing.resource_tracker, it is a separate process that holds the
// reading end of a channel whose writing end every process of the family holds. Creators
// send "R<device><inode><name>" after creating a block and "U<name>" after unlinking it.
// When the last writer is gone — every process of the family exited, however it died — the
// tracker reads EOF, unlinks what is still registered, reports it on stderr and exits.
//
// Choices, and the problem each one prevents:
// - The channel is an AF_UNIX SOCK_SEQPACKET socketpair, not a pipe: each message arrives
//   whole even when several processes send at once, EOF still means "no writer left", and
//   send(MSG_NOSIGNAL) to a dead tracker fails with EPIPE instead of killing us by SIGPIPE.
// - The writing end is O_CLOEXEC: children made by fork() share the tracker (they may use
//   blocks their parent created), programs exec'd by the family do not keep it open.
// - The tracker is double-forked: it is reparented to init at once, so it never shows up
//   as (or becomes a zombie) child of the program, and it outlives its creator by design.
// - It may be forked from a multithreaded program, so everything after fork() is
//   async-signal-safe: system calls only (the inline wrappers of src/os/*.hpp), no malloc,
//   no stdio, no locks, no exceptions.
// - It unmaps every MAP_SHARED mapping and closes every descriptor it inherited, so it
//   pins neither memory nor pipes of the family (a block unlinked and closed by the
//   family is freed at once, and a parent reading a child's stdout still sees EOF).
// - It ignores SIGINT/SIGTERM/SIGHUP: Ctrl-C on the terminal kills the program's process
//   group, and the tracker must survive that to clean up after it.
// - It unlinks a name only while the name still refers to the block the family created (the
//   device and inode recorded at creation): another program may have unlinked that block and
//   created a new one under the same name, and that block is not ours to remove. The check
//   and the unlink are two steps (Linux has no "unlink if still this inode"), so a name
//   replaced in between is still removed; replacing it before the family exits is safe.
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <new>

#include "mp/shared_memory.hpp"
#include "os/file.hpp"
#include "os/memory.hpp"
#include "os/process.hpp"

namespace mp::internal {

namespace {

constexpr std::size_t kNameSlot = 256;  // NAME_MAX + NUL

/// Which object a name referred to when it was registered.
struct Identity {
  std::uint64_t dev = 0, ino = 0;
};
constexpr std::size_t kMaxMessage = 1 + sizeof(Identity) + kNameSlot;  // 'R' + identity + name

// ------------------------------------------------------------- tracker side (post-fork)

/// A registered block: its name and the object it named at creation.
struct Entry {
  Identity id;
  char name[kNameSlot];
};

// A growable table of entries in anonymous memory (mmap/mremap: system calls, not malloc).
struct NameTable {
  Entry* slots = nullptr;
  std::size_t size = 0, capacity = 0;

  bool add(const Identity& id, const char* name, std::size_t len) noexcept {
    if (len == 0 || len >= kNameSlot) return false;
    if (size == capacity) {
      std::size_t cap = capacity ? capacity * 2 : 256;
      void* p = slots;
      int e = slots ? remap_memory(p, capacity * sizeof(Entry), cap * sizeof(Entry), MREMAP_MAYMOVE)
                    : map_memory(p, cap * sizeof(Entry), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (e != 0) return false;
      slots = static_cast<Entry*>(p);
      capacity = cap;
    }
    Entry& e = slots[size++];
    e.id = id;
    std::memcpy(e.name, name, len);
    e.name[len] = '\0';
    return true;
  }
  void remove(const char* name, std::size_t len) noexcept {
    for (std::size_t i = size; i-- > 0;) {
      Entry& e = slots[i];
      if (std::strlen(e.name) == len && std::memcmp(e.name, name, len) == 0) {
        if (i != size - 1) std::memcpy(&e, &slots[size - 1], sizeof(Entry));
        --size;
        return;
      }
    }
  }
  const Entry& at(std::size_t i) const noexcept { return slots[i]; }
};

void write_all(int fd, const char* s, std::size_t n) noexcept {
  while (n > 0) {
    ssize_t w = write_to(fd, s, n);
    if (w == -EINTR) continue;
    if (w <= 0) return;
    s += w;
    n -= static_cast<std::size_t>(w);
  }
}
void write_str(int fd, const char* s) noexcept { write_all(fd, s, std::strlen(s)); }

std::uintptr_t parse_hex(const char*& p) noexcept {
  std::uintptr_t v = 0;
  for (;; ++p) {
    char c = *p;
    if (c >= '0' && c <= '9') v = v * 16 + static_cast<std::uintptr_t>(c - '0');
    else if (c >= 'a' && c <= 'f') v = v * 16 + static_cast<std::uintptr_t>(c - 'a' + 10);
    else return v;
  }
}

/// Unmaps every MAP_SHARED mapping inherited from the family (/proc/self/maps lines whose
/// permissions end in 's'). Ranges are collected first and unmapped afterwards, so the
/// file is not read while it changes. The tracker itself uses only private memory.
void unmap_shared_mappings() noexcept {
  constexpr std::size_t kMaxRanges = 4096;
  void* mem = nullptr;
  if (map_memory(mem, kMaxRanges * 2 * sizeof(std::uintptr_t), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                 -1, 0) != 0)
    return;
  auto* ranges = static_cast<std::uintptr_t*>(mem);
  std::size_t n = 0;
  int fd = open_path("/proc/self/maps", O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    char line[128];  // only the start of each line matters: "start-end perms ..."
    std::size_t len = 0;
    bool skipping = false;  // rest of an over-long line
    char buf[4096];
    ssize_t r;
    while ((r = read_from(fd, buf, sizeof buf)) > 0 || r == -EINTR) {
      for (ssize_t i = 0; i < r; ++i) {
        char c = buf[i];
        if (c != '\n') {
          if (!skipping && len < sizeof line - 1) line[len++] = c;
          else skipping = true;
          continue;
        }
        line[len] = '\0';
        const char* p = line;
        std::uintptr_t start = parse_hex(p);
        if (*p == '-') {
          ++p;
          std::uintptr_t end = parse_hex(p);
          if (*p == ' ' && std::strlen(p) >= 5 && p[4] == 's' && n < kMaxRanges) {
            ranges[2 * n] = start;
            ranges[2 * n + 1] = end;
            ++n;
          }
        }
        len = 0;
        skipping = false;
      }
    }
    close_fd(fd);
  }
  for (std::size_t i = 0; i < n; ++i)
    (void)unmap_memory(reinterpret_cast<void*>(ranges[2 * i]), ranges[2 * i + 1] - ranges[2 * i]);
  (void)unmap_memory(mem, kMaxRanges * 2 * sizeof(std::uintptr_t));
}

/// The tracker process. Async-signal-safe only (see the file comment). Never returns.
[[noreturn]] void tracker_main(int sock) noexcept {
  struct sigaction ign{};
  ign.sa_handler = SIG_IGN;
  for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGPIPE, SIGQUIT, SIGTSTP}) (void)set_signal_action(sig, &ign, nullptr);
  sigset_t none;
  sigemptyset(&none);
  (void)set_signal_mask(SIG_SETMASK, &none, nullptr);
  (void)set_thread_name("mp-res-tracker");
  (void)set_parent_death_signal(0);  // a daemon child's PDEATHSIG must not follow us here

  // Descriptors: 0 and 1 to /dev/null, 2 kept for the report, the socket as 3, nothing else.
  int high = dup_at_least(sock, 10);
  int null = open_path("/dev/null", O_RDWR);
  if (null >= 0) {
    (void)dup_onto(null, 0);
    (void)dup_onto(null, 1);
  }
  if (high >= 0) (void)dup_onto(high, 3);
  (void)close_from(4);
  if (high < 0) ::_exit(1);
  sock = 3;
  if (change_dir("/") != 0) {
    // Not fatal: only keeps a mount point busy.
  }
  unmap_shared_mappings();

  NameTable names;
  char msg[kMaxMessage];
  for (;;) {
    ssize_t n = socket_recv(sock, msg, sizeof msg, 0);
    if (n == -EINTR) continue;
    if (n <= 0) break;  // EOF: every process of the family is gone
    auto len = static_cast<std::size_t>(n) - 1;
    if (msg[0] == 'R' && len > sizeof(Identity)) {
      Identity id;
      std::memcpy(&id, msg + 1, sizeof id);
      names.add(id, msg + 1 + sizeof id, len - sizeof id);
    } else if (msg[0] == 'U') {
      names.remove(msg + 1, len);
    }
  }

  char path[16 + kNameSlot];
  for (std::size_t i = 0; i < names.size; ++i) {
    const char* name = names.at(i).name;
    std::memcpy(path, "/dev/shm/", 9);
    std::memcpy(path + 9, name, std::strlen(name) + 1);
    // Gone (someone outside the family unlinked it) or now another block (someone then
    // created one under the same name): not a leak of ours, so neither removed nor reported.
    struct stat st{};
    if (stat_path(path, st) != 0 || static_cast<std::uint64_t>(st.st_dev) != names.at(i).id.dev ||
        static_cast<std::uint64_t>(st.st_ino) != names.at(i).id.ino)
      continue;
    if (unlink_path(path) == 0) {
      write_str(2, "mp.resource_tracker: removed leaked shared memory block '");
      write_str(2, name);
      write_str(2, "' (its creator exited without calling unlink())\n");
    }
  }
  ::_exit(0);
}

// --------------------------------------------------------------------------- client side

struct Client {
  std::mutex mu;  // guards starting the tracker; re-initialised in a forked child
  int fd = -1;    // writing end, shared with forked children
  pid_t pid = 0;
};

Client& client() {
  static Client* c = new Client;  // never destroyed: usable from static destructors
  return *c;
}

[[maybe_unused]] const bool atfork_installed = [] {
  client();
  // Another thread may have held the mutex at fork time: the child gets a fresh one.
  ::pthread_atfork(nullptr, nullptr, [] { new (&client().mu) std::mutex; });
  return true;
}();

/// Forks the tracker (via an intermediate process, reaped here). Caller holds c.mu.
bool start_locked(Client& c) noexcept {
  int sv[2];
  if (socket_pair(SOCK_SEQPACKET | SOCK_CLOEXEC, sv) != 0) return false;
  int pid_pipe[2];
  if (pipe_pair(pid_pipe, O_CLOEXEC) != 0) {
    close_fd(sv[0]);
    close_fd(sv[1]);
    return false;
  }
  // The first fork goes through fork() so that atfork handlers and sanitizers see it; the
  // intermediate is single-threaded and forks again with _Fork(), which runs no handlers.
  pid_t mid = fork_process();
  if (mid == 0) {
    pid_t tracker = fork_without_handlers();
    if (tracker == 0) tracker_main(sv[1]);
    write_all(pid_pipe[1], reinterpret_cast<const char*>(&tracker), sizeof tracker);
    ::_exit(tracker > 0 ? 0 : 1);
  }
  close_fd(sv[1]);
  close_fd(pid_pipe[1]);
  pid_t tracker = -1;
  if (mid > 0) {
    int st = 0;
    while (wait_pid(mid, &st, 0) == -EINTR) {
    }
    ssize_t r;
    while ((r = read_from(pid_pipe[0], &tracker, sizeof tracker)) == -EINTR) {
    }
    if (r != sizeof tracker) tracker = -1;
  }
  close_fd(pid_pipe[0]);
  if (tracker <= 0) {
    close_fd(sv[0]);
    return false;
  }
  c.fd = sv[0];
  c.pid = tracker;
  return true;
}

/// Sends `kind`, then `id` unless null, then `name`.
bool send_message(char kind, const Identity* id, const std::string& name) noexcept {
  Client& c = client();
  if (name.empty() || name.size() >= kNameSlot) return false;
  char msg[kMaxMessage];
  std::size_t len = 0;
  msg[len++] = kind;
  if (id) {
    std::memcpy(msg + len, id, sizeof *id);
    len += sizeof *id;
  }
  std::memcpy(msg + len, name.data(), name.size());
  len += name.size();
  for (int attempt = 0; attempt < 2; ++attempt) {
    int fd;
    {
      std::lock_guard g(c.mu);
      if (c.fd < 0 && (kind != 'R' || !start_locked(c))) return false;
      fd = c.fd;
    }
    ssize_t n;
    while ((n = socket_send(fd, msg, len, MSG_NOSIGNAL)) == -EINTR) {
    }
    if (n == static_cast<ssize_t>(len)) return true;
    // The tracker is gone (killed?): forget it; a registration starts a new one.
    std::lock_guard g(c.mu);
    if (c.fd == fd) {
      close_fd(c.fd);
      c.fd = -1;
      c.pid = 0;
    }
  }
  return false;
}

}  // namespace

bool ensure_resource_tracker() noexcept {
  Client& c = client();
  std::lock_guard g(c.mu);
  return c.fd >= 0 || start_locked(c);
}

void track_shared_memory(const std::string& name, std::uint64_t dev, std::uint64_t ino) noexcept {
  const Identity id{dev, ino};
  send_message('R', &id, name);
}
void untrack_shared_memory(const std::string& name) noexcept { send_message('U', nullptr, name); }

pid_t resource_tracker_pid() noexcept {
  Client& c = client();
  std::lock_guard g(c.mu);
  return c.fd >= 0 ? c.pid : 0;
}

}  // namespace mp::internal
