// libFuzzer target: the manager's wire parser and the server's frame handler.
//
// Every input is fed (1) to the request and reply decoders, which must either return a
// message that re-encodes to exactly the input or throw mp::CodecError; and (2) as a
// frame to a live ServerCore holding a few objects, which must never crash, never throw,
// and either close the connection (empty answer) or answer with a valid reply.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "managers/server.hpp"
#include "mp/managers.hpp"

namespace mm = mp::internal::manager;

namespace {

mm::ServerCore& core_with_objects(mm::Session& s) {
  static mm::ServerCore core;
  static bool init = [&] {
    (void)mm::AutoRegister<mp::managed::Dict<int, int>>::registered;
    (void)mm::AutoRegister<mp::managed::List<std::string>>::registered;
    for (auto key : {mm::AutoRegister<mp::managed::Dict<int, int>>::key(),
                     mm::AutoRegister<mp::managed::List<std::string>>::key()})
      (void)core.handle(s, {"", "create", mp::codec::encode(std::pair<std::string, std::string>(key, ""))});
    return true;
  }();
  (void)init;
  return core;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  const auto& wire = mm::native_wire();
  try {
    auto req = wire.decode_request(in);
    if (wire.encode(req) != in) std::abort();
  } catch (const mp::CodecError&) {
  }
  try {
    auto rep = wire.decode_reply(in);
    if (wire.encode(rep) != in) std::abort();
  } catch (const mp::CodecError&) {
  }
  static mm::Session owner;  // keeps the seeded objects alive across inputs
  mm::ServerCore& core = core_with_objects(owner);
  mm::Session session;
  std::string out = core.handle_frame(session, in, wire);
  if (!out.empty()) (void)wire.decode_reply(out);  // must be valid; throws (and crashes the fuzzer) if not
  core.release(session);
  return 0;
}
