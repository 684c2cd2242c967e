// SPDX-License-Identifier: Apache-2.0
// `canal serve NAME ...`: a listener whose clients are relayed to standard
// input and output (one at a time), echoed, or handed to a child process
// each (--exec).

#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "canal/canal.h"
#include "tools/canal/accounts.h"
#include "tools/canal/commands.h"
#include "tools/canal/dump.h"
#include "tools/canal/exec.h"
#include "tools/canal/output.h"
#include "tools/canal/relay.h"

namespace canal_cli {
namespace {

constexpr size_t kChunk = 64 * 1024;

bool IsNormalEnd(const absl::Status& status) {
  return status.ok() || absl::IsCancelled(status) ||
         absl::IsUnavailable(status) || absl::IsOutOfRange(status);
}

// Sends back every message or chunk that arrives.
absl::Status Echo(canal::Channel& channel, const RelayOptions& relay) {
  const bool message = channel.mode() == canal::PipeMode::kMessage;
  std::vector<char> buffer(kChunk);
  while (true) {
    std::string msg;
    absl::string_view data;
    if (message) {
      absl::StatusOr<std::string> m = channel.ReadMessage();
      if (!m.ok()) return m.status();
      msg = *std::move(m);
      data = msg;
    } else {
      absl::StatusOr<canal::ReadResult> r =
          channel.Read(absl::MakeSpan(buffer));
      if (!r.ok()) return r.status();
      data = absl::string_view(buffer.data(), r->size);
    }
    relay.dumper->Record({Direction::kReceived, relay.client, message, data});
    relay.dumper->Record({Direction::kSent, relay.client, message, data});
    absl::Status status = channel.Write(data);
    if (!status.ok()) return status;
  }
}

// The default: the client against this program's standard input and
// output. Ends when the client finishes (or the channel is closed by a
// stop). The end of standard input half-closes the channel, so the client
// sees the end of the stream. `close_mu` serialises that with Close.
absl::Status RelayStdio(canal::Channel& channel, InputPump& pump,
                        SyncWriter& out, const RelayOptions& relay,
                        absl::Mutex* close_mu) {
  pump.Rearm();
  absl::Status input_status;
  std::thread input([&] {
    input_status = LocalToChannel(pump.Reader(), channel, relay);
    if (input_status.ok()) {
      absl::MutexLock lock(close_mu);
      FinishSending(channel);
    }
  });
  absl::Status output_status = ChannelToLocal(
      channel, [&out](absl::string_view data) { return out.Write(data); },
      relay);
  if (output_status.ok()) {
    // The client finished sending; what standard input already delivered
    // still goes to it (it may be reading until we finish).
    pump.Drain();
    input.join();
  } else {
    pump.Interrupt();
  }
  {
    absl::MutexLock lock(close_mu);
    channel.Close();
  }
  if (input.joinable()) input.join();
  return IsNormalEnd(output_status) ? input_status : output_status;
}

// The sessions running on threads of their own (--echo, --exec). Finished
// ones are joined whenever a new one starts, so a long-running server does
// not pile up threads.
class Sessions {
 public:
  Sessions() = default;
  Sessions(const Sessions&) = delete;
  Sessions& operator=(const Sessions&) = delete;
  ~Sessions() { JoinAll(); }

  void Start(std::function<void()> fn) {
    JoinFinished();
    auto done = std::make_shared<absl::Notification>();
    threads_.emplace_back(std::thread([fn = std::move(fn), done] {
                            fn();
                            done->Notify();
                          }),
                          done);
  }

  void JoinAll() {
    for (auto& [thread, done] : threads_) thread.join();
    threads_.clear();
  }

 private:
  void JoinFinished() {
    for (auto it = threads_.begin(); it != threads_.end();) {
      if (it->second->HasBeenNotified()) {
        it->first.join();
        it = threads_.erase(it);
      } else {
        ++it;
      }
    }
  }

  std::list<std::pair<std::thread, std::shared_ptr<absl::Notification>>>
      threads_;
};

// How many --exec children run; the accept loop waits for a free one.
class ChildSlots {
 public:
  explicit ChildSlots(int limit) : limit_(limit) {}

  // Waits until fewer than `limit` children run, or Cancel. Returns false
  // if cancelled. `at_bound` runs (once) if it has to wait.
  bool AwaitFree(const std::function<void()>& at_bound) {
    bool full;
    {
      absl::MutexLock lock(&mu_);
      full = running_ >= limit_ && !cancelled_;
    }
    if (full && at_bound) at_bound();
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(
        +[](ChildSlots* s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(s->mu_) {
          return s->cancelled_ || s->running_ < s->limit_;
        },
        this));
    return !cancelled_;
  }

  void Take() {
    absl::MutexLock lock(&mu_);
    ++running_;
  }

  void Give() {
    absl::MutexLock lock(&mu_);
    --running_;
  }

  void Cancel() {
    absl::MutexLock lock(&mu_);
    cancelled_ = true;
  }

 private:
  absl::Mutex mu_;
  const int limit_;
  int running_ ABSL_GUARDED_BY(mu_) = 0;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace

int ServeCommand(const ServeFlags& flags, const Io& io, StopSource* stop) {
  AccessFlags access;
  access.all_local_users = flags.allow_local_users;
  access.group = flags.allow_group;
  absl::StatusOr<canal::AccessPolicy> policy = AccessPolicyFor(access);
  if (!policy.ok()) return UsageError(io, "serve", policy.status().message());

  canal::ListenerOptions options;
  options.mode =
      flags.message ? canal::PipeMode::kMessage : canal::PipeMode::kByte;
  options.max_instances = flags.max_instances;
  options.access_policy = *policy;
  absl::StatusOr<canal::Listener> listener =
      canal::Listener::Create(flags.name, options);
  if (!listener.ok()) return Fail(io, listener.status());

  SyncWriter out(io.out);
  SyncWriter err(io.err);
  const Dumper dumper(flags.dump, &err);
  RelayOptions relay;
  relay.format = flags.format;
  relay.dumper = &dumper;
  const std::string who = absl::StrCat("canal serve ", flags.name);
  auto report = [&err, &who](absl::string_view what) {
    (void)err.Write(absl::StrCat(who, ": ", what, "\n"));
  };

  const bool exec = !flags.exec.empty();
  const bool concurrent = flags.echo || exec;
  if (concurrent && io.input_is_terminal && io.read_input && stop != nullptr) {
    // Ctrl-D (Ctrl-Z Enter on Windows) at a terminal stops the server. The
    // thread blocks in the terminal for the life of the process.
    std::thread([read = io.read_input, stop] {
      std::vector<char> buffer(256);
      while (true) {
        absl::StatusOr<size_t> n = read(absl::MakeSpan(buffer));
        if (!n.ok() || *n == 0) break;
      }
      stop->Stop();
    }).detach();
  }
  // Standard input is read only for the default relay.
  std::unique_ptr<InputPump> pump;
  if (!concurrent) pump = std::make_unique<InputPump>(io.read_input);

  ExecContext exec_context;
  exec_context.argv = flags.exec;
  exec_context.pipe_name = flags.name;
  exec_context.relay = relay;
  exec_context.stop = stop;
  exec_context.err = &err;
  exec_context.verbose = flags.verbose;

  ChildSlots slots(flags.max_children);
  Sessions sessions;
  absl::Status accept_error;
  int64_t accepted = 0;
  {
    StopScope stop_listener(stop, [&listener, &slots] {
      listener->Close();
      slots.Cancel();
    });
    while (flags.count == 0 || accepted < flags.count) {
      if (exec && !slots.AwaitFree([&] {
            if (flags.verbose) {
              report(absl::StrCat(flags.max_children,
                                  " children running (--max-children); not "
                                  "accepting until one ends"));
            }
          })) {
        break;  // stopped
      }
      absl::StatusOr<canal::Channel> ch = listener->Accept();
      if (!ch.ok()) {
        // Cancelled: stopped. Anything else is a real failure.
        if (!absl::IsCancelled(ch.status())) accept_error = ch.status();
        break;
      }
      const int client = static_cast<int>(++accepted);
      if (flags.count != 0 && accepted == flags.count) {
        listener->Close();  // no more clients: they would never be served
      }
      if (flags.verbose) {
        absl::StatusOr<canal::PeerInfo> peer = ch->Peer();
        report(absl::StrCat("client ", client, " connected (pid ",
                            peer.ok() ? peer->process_id : 0, ")"));
      }
      auto session = [&, client](canal::Channel channel) {
        RelayOptions mine = relay;
        mine.client = client;
        absl::Status status;
        absl::Mutex close_mu;
        {
          StopScope stop_client(stop, [&channel, &close_mu] {
            absl::MutexLock lock(&close_mu);
            channel.Close();
          });
          if (exec) {
            RunExecSession(channel, client, exec_context);
          } else if (flags.echo) {
            status = Echo(channel, mine);
          } else {
            status = RelayStdio(channel, *pump, out, mine, &close_mu);
          }
          absl::MutexLock lock(&close_mu);
          channel.Close();
        }
        if (!IsNormalEnd(status)) {
          report(absl::StrCat("client ", client, ": ", status.message()));
        }
        if (flags.verbose) report(absl::StrCat("client ", client, " finished"));
      };
      if (!concurrent) {
        session(std::move(*ch));
        continue;
      }
      if (exec) slots.Take();
      sessions.Start(
          [session, exec, &slots,
           c = std::make_shared<canal::Channel>(std::move(*ch))]() mutable {
            session(std::move(*c));
            if (exec) slots.Give();
          });
    }
  }
  sessions.JoinAll();
  if (!accept_error.ok()) return Fail(io, accept_error);
  return kExitOk;
}

}  // namespace canal_cli
