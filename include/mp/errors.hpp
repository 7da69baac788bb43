// mp/errors.hpp — the exceptions mp raises, named after Python's.
//
// Mirrors: Python's builtin exceptions and those of multiprocessing, queue, threading and
// concurrent.futures. Every mp exception derives from mp::Error (itself a
// std::runtime_error), so `catch (const mp::Error&)` catches everything mp throws.
// Messages say what happened and what to do about it. Exceptions that wrap a failing
// system call carry its name and errno (`OSError::code()`).
//
// This header is the one home of every Python builtin (KeyError, TypeError, ...): a module
// raises these and never declares its own (mp::pickle::KeyError, mp::subprocess::
// FileNotFoundError are aliases of the classes here). Only a module's own exceptions live
// in its header (subprocess's CalledProcessError, pickle's UnpicklingError). How these
// exceptions cross process boundaries (pool results, manager replies) is one table:
// src/common/exception_table.cpp.
//
//   try { q.get(100ms); } catch (const mp::Empty&) { /* nothing arrived in time */ }
#pragma once

#include <cerrno>
#include <stdexcept>
#include <string>
#include <system_error>
#include <utility>

namespace mp {

/// Root of every exception mp throws.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// A system call failed (Python's OSError). `code()` is the errno as a std::error_code;
/// `filename()` the path the call was about, when there is one (Python's OSError.filename).
class OSError : public Error {
 public:
  OSError(int err, const std::string& what_failed)
      : Error(what_failed + ": " + std::generic_category().message(err)), code_(err, std::generic_category()) {}
  [[nodiscard]] std::error_code code() const noexcept { return code_; }
  [[nodiscard]] const std::string& filename() const noexcept { return filename_; }

 protected:
  /// For the errno-specific subclasses below.
  OSError(int err, std::string filename, const std::string& what_failed) : OSError(err, what_failed) {
    filename_ = std::move(filename);
  }

 private:
  std::error_code code_;
  std::string filename_;
};
/// A file or directory that does not exist (Python's FileNotFoundError; errno ENOENT),
/// e.g. a program subprocess cannot find. `filename()` is the path that was not found.
class FileNotFoundError : public OSError {
 public:
  FileNotFoundError(std::string filename, const std::string& what) : OSError(ENOENT, std::move(filename), what) {}
};
/// A file that exists but may not be used so (Python's PermissionError; errno EACCES),
/// e.g. a program subprocess may not execute.
class PermissionError : public OSError {
 public:
  PermissionError(std::string filename, const std::string& what) : OSError(EACCES, std::move(filename), what) {}
};

/// A non-blocking or timed get found nothing (Python's queue.Empty).
class Empty : public Error { public: using Error::Error; };
/// A non-blocking or timed put found no room (Python's queue.Full).
class Full : public Error { public: using Error::Error; };
/// queue.ShutDown (Python 3.13): put() on a queue that was shut down, or get() on one that
/// was shut down and is empty (at once after shutdown(immediate=true)).
class ShutDown : public Error { public: using Error::Error; };
/// A blocking operation's deadline passed (Python's TimeoutError / multiprocessing.TimeoutError).
class TimeoutError : public Error { public: using Error::Error; };
/// The peer closed its end: nothing more will ever arrive (Python's EOFError).
class EOFError : public Error { public: using Error::Error; };
/// A value is of the right type but not acceptable (Python's ValueError), e.g. releasing an unlocked lock.
class ValueError : public Error { public: using Error::Error; };
/// A key or index that is not there (Python's LookupError): the base of KeyError and IndexError.
class LookupError : public Error { public: using Error::Error; };
/// A mapping has no such key (Python's KeyError): a dict proxy's getitem/pop, a manager
/// object id that is gone, mp::pickle::Dict::at().
class KeyError : public LookupError { public: using LookupError::LookupError; };
/// An index outside the sequence (Python's IndexError): shared arrays, list proxies.
class IndexError : public LookupError { public: using LookupError::LookupError; };
/// An object has no such attribute or method (Python's AttributeError): a method a managed
/// referent does not expose, a missing Namespace attribute.
class AttributeError : public Error { public: using Error::Error; };
/// A call made in a state that does not allow it (Python's RuntimeError / AssertionError), e.g. start() twice.
class RuntimeError : public Error { public: using Error::Error; };
/// multiprocessing.ProcessError: a process-level misuse or failure.
class ProcessError : public Error { public: using Error::Error; };
/// Wrong or missing authkey on a connection (multiprocessing.AuthenticationError).
class AuthenticationError : public ProcessError { public: using ProcessError::ProcessError; };
/// An exception raised in another process, re-raised here with its type name and message.
class RemoteError : public Error {
 public:
  RemoteError(std::string type_name, std::string message)
      : Error(type_name + ": " + message), type_name_(std::move(type_name)), message_(std::move(message)) {}
  [[nodiscard]] const std::string& type_name() const noexcept { return type_name_; }
  [[nodiscard]] const std::string& message() const noexcept { return message_; }

 private:
  std::string type_name_;
  std::string message_;
};
/// A worker process died (killed, crashed, exited) while running a task. Says which and why,
/// as Python 3.15's BrokenProcessPool does: the worker's pid and its exit code or signal,
/// and whether the kernel's out-of-memory killer ended it.
class WorkerLost : public Error {
 public:
  WorkerLost(int pid, int signal, const std::string& what, int exit_code = 0, bool oom_killed = false)
      : Error(what), pid_(pid), signal_(signal), exit_code_(exit_code), oom_killed_(oom_killed) {}
  [[nodiscard]] int pid() const noexcept { return pid_; }
  /// The signal that killed the worker, or 0 if it exited.
  [[nodiscard]] int signal() const noexcept { return signal_; }
  /// As Process::exitcode(): -N when signal N killed the worker, else its exit status.
  [[nodiscard]] int exitcode() const noexcept { return signal_ ? -signal_ : exit_code_; }
  /// True when the kernel's OOM killer ended the worker: it died of SIGKILL and the
  /// out-of-memory kill count of the pool's memory cgroup (v1 memory.oom_control, v2
  /// memory.events) rose meanwhile. A worker that moved itself to another cgroup, or a
  /// pool that cannot read the count, reports plain SIGKILL.
  [[nodiscard]] bool oom_killed() const noexcept { return oom_killed_; }

 private:
  int pid_;
  int signal_;
  int exit_code_;
  bool oom_killed_;
};
/// A pool can no longer run work (concurrent.futures.BrokenExecutor / BrokenProcessPool).
class BrokenPool : public Error { public: using Error::Error; };
/// threading.BrokenBarrierError: the barrier was reset or aborted while waiting.
class BrokenBarrierError : public Error { public: using Error::Error; };
/// A value could not be encoded or decoded for transfer between processes.
class CodecError : public Error { public: using Error::Error; };
/// A value is not of the kind asked for, does not fit the C++ type asked for (an int out of
/// range, a tuple of the wrong length), is unhashable where a key is needed, or a call got
/// the wrong arguments (Python's TypeError / OverflowError). Unlike Python's, it is a
/// CodecError: in mp a TypeError is a value that cannot be decoded as the type asked for
/// (mp::pickle's Value conversions, a CPython manager call's arguments).
class TypeError : public CodecError { public: using CodecError::CodecError; };
/// concurrent.futures.CancelledError: the task was cancelled (what a cancelled Future's
/// result() raises) — before it started, or, beyond Python, while it ran in a process pool.
class CancelledError : public Error {
 public:
  CancelledError()
      : Error("CancelledError: the task was cancelled (cancel(), or shutdown with cancel_futures) and has no "
              "result; a task cancelled while running had its worker process killed") {}
};

}  // namespace mp
