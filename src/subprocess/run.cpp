// run(), call(), check_call() and check_output(): Python's one-call helpers, each a Popen
// plus communicate() or wait().
#include "mp/subprocess.hpp"

namespace mp::subprocess {

void CompletedProcess::check_returncode() const {
  if (returncode != 0) throw CalledProcessError(returncode, args, stdout, stderr);
}

CompletedProcess run(CommandLine args, RunOptions o) {
  PopenOptions po;
  po.executable = std::move(o.executable);
  po.stdin = o.input ? PIPE : o.stdin;
  po.stdout = o.capture_output ? PIPE : o.stdout;
  po.stderr = o.capture_output ? PIPE : o.stderr;
  if (o.input && o.stdin.kind() != Redirect::Kind::inherit)
    throw ValueError("run(): stdin and input cannot both be used");
  if (o.capture_output && (o.stdout.kind() != Redirect::Kind::inherit || o.stderr.kind() != Redirect::Kind::inherit))
    throw ValueError("run(): stdout and stderr cannot be used with capture_output");
  po.close_fds = o.close_fds;
  po.shell = o.shell;
  po.cwd = std::move(o.cwd);
  po.env = std::move(o.env);
  po.start_new_session = o.start_new_session;
  po.pass_fds = std::move(o.pass_fds);
  po.text = o.text;

  Popen p(std::move(args), std::move(po));
  CompletedProcess r;
  bool needs_communicate = o.input || p.stdout() || p.stderr();
  if (!needs_communicate && !o.timeout) {
    r.returncode = p.wait();  // the fast path: spawn + waitpid, nothing else
  } else {
    try {
      auto [out, err] = p.communicate(o.input ? o.input->view() : std::string_view{}, o.timeout);
      r.stdout = std::move(out);
      r.stderr = std::move(err);
    } catch (const TimeoutExpired& e) {
      // Python: kill, collect what is left, re-raise with all the output.
      p.kill();
      auto [out, err] = p.communicate();  // continues the timed-out call: returns all output
      throw TimeoutExpired(p.args(), e.timeout(), std::move(out), std::move(err));
    }
    r.returncode = *p.returncode();
  }
  r.args = p.args();
  if (o.check) r.check_returncode();
  return r;
}

int call(CommandLine args, RunOptions opts) {
  opts.check = false;
  return run(std::move(args), std::move(opts)).returncode;
}

int check_call(CommandLine args, RunOptions opts) {
  opts.check = true;
  run(std::move(args), std::move(opts));
  return 0;
}

std::string check_output(CommandLine args, RunOptions opts) {
  if (opts.stdout.kind() != Redirect::Kind::inherit)
    throw ValueError("check_output(): stdout argument not allowed, it will be overridden");
  opts.stdout = PIPE;
  opts.check = true;
  return run(std::move(args), std::move(opts)).stdout;
}

}  // namespace mp::subprocess
