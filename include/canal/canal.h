// SPDX-License-Identifier: Apache-2.0
// canal: one portable Channel/Listener API over Win32 named pipes on Windows
// and Unix domain sockets elsewhere, with Windows named-pipe semantics
// (message mode, instances and busy waits, transactions, peek, peer identity)
// on every OS.
//
// Names. A portable name is 1 to 200 characters from [A-Za-z0-9._-], not "."
// or "..". It maps to `\\.\pipe\<name>` on Windows and to
// `<runtime dir>/<name>` on POSIX, where the runtime dir is
// `$CANAL_RUNTIME_DIR`, else `$XDG_RUNTIME_DIR/canal`, else
// `/tmp/canal-<uid>`, created with mode 0700 and checked. Native names pass
// through unchanged: an absolute path on POSIX, `\\.\pipe\...` on Windows.
//
//   // Server
//   canal::ListenerOptions options;
//   options.mode = canal::PipeMode::kMessage;
//   auto listener = canal::Listener::Create("echo", options);
//   auto ch = listener->Accept();
//   auto msg = ch->ReadMessage();
//   ch->WriteMessage(*msg);
//
//   // Client
//   auto reply = canal::Call("echo", "hello");

#ifndef CANAL_CANAL_H_
#define CANAL_CANAL_H_

#include "canal/channel.h"
#include "canal/fifo.h"
#include "canal/handle.h"
#include "canal/listener.h"
#include "canal/pipe.h"
#include "canal/server.h"
#include "canal/subprocess.h"
#include "canal/types.h"
#include "canal/version.h"

#endif  // CANAL_CANAL_H_
