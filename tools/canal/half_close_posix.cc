// SPDX-License-Identifier: Apache-2.0
// POSIX half-close of a channel: its socket's sending direction.

#include <sys/socket.h>

#include "tools/canal/relay.h"

namespace canal_cli {

void FinishSending(canal::Channel& channel) {
  const int fd = channel.native_handle();
  if (fd >= 0) ::shutdown(fd, SHUT_WR);
}

}  // namespace canal_cli
