// <mp/mp.hpp> — everything in mp: Python's multiprocessing, threading, subprocess and
// concurrent.futures as a C++20 library. Include the concept headers directly to build faster.
#pragma once

#include "mp/codec.hpp"
#include "mp/connection.hpp"
#include "mp/errors.hpp"
#include "mp/pickle.hpp"
#include "mp/process.hpp"
#include "mp/sharedctypes.hpp"
#include "mp/shared_memory.hpp"
#include "mp/queue.hpp"
#include "mp/synchronize.hpp"
#include "mp/subprocess.hpp"
#include "mp/threading.hpp"
#include "mp/pool.hpp"
#include "mp/futures.hpp"
#include "mp/progress.hpp"
#include "mp/managers.hpp"
#include "mp/managers_python.hpp"
