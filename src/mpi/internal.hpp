// Internal to mp_mpi: the wire format between rank 0 and the serving ranks, and helpers
// shared by the registry, the serve loop and rank 0's engine.
//
// Messages (MPI_BYTE, on a private duplicate of MPI_COMM_WORLD):
//   kTask   0 -> r  [u64 id][field name][field signature][u32 count][count x arguments]
//                   (fields and arguments as in include/mp/internal/call.hpp: u64 length, bytes)
//   kResult r -> 0  [u64 id][u8 status][status 0: count x field | 1: field type, field message]
//   kHello  r -> 0  [i32 pid][host name]            once, when r starts serving
//   kBeat   r -> 0  (empty)                         every heartbeat interval
//   kStop   0 -> r  [u8 1: skip MPI_Finalize]       leave the serve loop
//   kBye    r -> 0  (empty)                         r has left it; nothing more will come
//   kWelcome 0 -> r [i32 pid][host name]            once, when rank 0's engine starts
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/exception_table.hpp"
#include "common/type_name.hpp"

namespace mp::mpi::internal {

enum Tag : int { kTask = 1, kResult = 2, kHello = 3, kBeat = 4, kStop = 5, kBye = 6, kWelcome = 7 };

using mp::internal::demangle;  // src/common/type_name.hpp

/// [i32 getpid()][host name]: what kHello and kWelcome carry.
std::string identity();
/// pidfd_open(2); -1 on failure.
int pidfd_open(int pid) noexcept;

/// Runs one kTask message and returns the kResult message. Never throws for a task's own
/// failure (it becomes status 1); throws only std::bad_alloc.
std::string run_chunk(std::string_view task, int rank);

}  // namespace mp::mpi::internal
