// SPDX-License-Identifier: Apache-2.0
// Windows named pipes cannot be half-closed (see relay.h).

#include "tools/canal/relay.h"

namespace canal_cli {

void FinishSending(canal::Channel&) {}

}  // namespace canal_cli
