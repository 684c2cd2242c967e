#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Drives the real `canal` binary as separate processes (POSIX build), for
# what the C++ tests (tool_process_test.cc, both backends) cannot do:
# signals, servers and clients of other users (setpriv), and programs nobody
# here wrote as peers: Node.js `net`, socat and Python's `socket`. A case
# whose program is missing is skipped with the reason (the test command,
# scripts/test.sh, installs them). Synchronises with `canal wait --poll`,
# never sleeps.
#   tools_process_test.sh PATH/TO/canal PATH/TO/canal_test_child
set -uo pipefail
CANAL="$1"
CHILD="$2"
failures=0
passed=0
skipped=0
check() {  # check DESCRIPTION COMMAND...: runs the command, counts a failure
  local what="$1"; shift
  if "$@"; then echo "ok: $what"; passed=$((passed + 1))
  else echo "FAILED: $what"; failures=$((failures + 1)); fi
}
skip() { echo "skipped: $1"; skipped=$((skipped + 1)); }
expect_code() {  # expect_code CODE COMMAND...
  local want="$1"; shift
  "$@" >/dev/null 2>&1
  local got=$?
  [[ "$got" == "$want" ]] || { echo "  exit code $got, wanted $want: $*"; return 1; }
}
equals() {  # equals WANTED ACTUAL
  [[ "$1" == "$2" ]] || { printf '  wanted %q\n  got    %q\n' "$1" "$2"; return 1; }
}
have() { command -v "$1" >/dev/null 2>&1; }

export CANAL_RUNTIME_DIR="$(mktemp -d)"
chmod 700 "$CANAL_RUNTIME_DIR"
SHARED="$(mktemp -d)"  # native socket paths other users can reach
chmod 755 "$SHARED"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  rm -rf "$CANAL_RUNTIME_DIR" "$SHARED"
}
trap cleanup EXIT
name="tools-sh-$$-$RANDOM"
await() { "$CANAL" wait "$1" --poll --timeout 30s; }

# --- serve --echo and call; SIGINT -------------------------------------------
"$CANAL" serve "$name" --message --echo &
server=$!
pids+=("$server")
check "wait --poll finds the server" await "$name"
check "call round trip" equals "hello there" "$("$CANAL" call "$name" "hello there")"
check "call - reads stdin" equals "from stdin" "$(echo "from stdin" | "$CANAL" call "$name" -)"
check "connect sends lines as messages" equals "$(printf 'one\ntwo')" \
  "$(printf 'one\ntwo\n' | "$CANAL" connect "$name" --message --linger 30s)"
check "list shows the server" bash -c "'$CANAL' list | grep -q '^$name  *message  *duplex  *unlimited  *$server  *'"
check "list --json shows the server" python3 -c '
import json, sys
found = [p for p in json.loads(sys.argv[1]) if p["name"] == sys.argv[2]]
assert found and found[0]["pid"] == int(sys.argv[3]), found
' "$("$CANAL" list --json)" "$name" "$server"
kill -INT "$server"
wait "$server"
check "serve exits 0 on SIGINT" test $? == 0
check "list no longer shows it" bash -c "! '$CANAL' list | grep -q '^$name '"

# --- the default relay: stdin/stdout both ways ------------------------------
out="$CANAL_RUNTIME_DIR/out.txt"
echo "from the server" | "$CANAL" serve "$name-2" --count 1 >"$out" &
server=$!
pids+=("$server")
check "wait --poll finds the relay" await "$name-2"
check "connect gets the server's stdin" equals "from the server" \
  "$(printf 'abc\ndef' | "$CANAL" connect "$name-2" --linger 30s)"
wait "$server"
check "serve --count 1 exits 0" test $? == 0
check "serve printed the client's data" equals "$(printf 'abc\ndef')" "$(cat "$out")"

# --- --exec with a shell pipeline's tools; SIGTERM kills running children ------
"$CANAL" serve "$name-3" --exec 'tr a-z A-Z' &
server=$!
pids+=("$server")
check "wait --poll finds the exec server" await "$name-3"
check "connect | tr | connect (half-close ends tr's input)" equals "VIA CANAL" \
  "$(echo "via canal" | "$CANAL" connect "$name-3" --linger 30s)"
check "--dump hex shows both directions" bash -c \
  "echo hi | '$CANAL' connect '$name-3' --linger 30s --dump hex 2>&1 >/dev/null |
   grep -q '^< 3 bytes'"
if have node; then
  check "Node.js net client of an --exec server" equals "HELLO NODE" "$(node -e '
    const net = require("net");
    const s = net.createConnection(process.argv[1]);
    let out = "";
    s.on("data", d => { out += d; });
    s.on("end", () => { process.stdout.write(out); });
    s.on("error", e => { console.error(e.message); process.exit(1); });
    s.end("hello node\n");  // half-close: tr sees the end of its input
  ' "$CANAL_RUNTIME_DIR/$name-3")"
else
  skip "Node.js client: node is not installed (scripts/setup.sh installs nodejs)"
fi
kill -TERM "$server"
wait "$server"
check "exec server exits 0 on SIGTERM" test $? == 0

# The server's stderr is read line by line: the report that a client came
# is the signal that its child runs.
exec 8< <(exec "$CANAL" serve "$name-4" --exec "'$CHILD' hang" --verbose 2>&1 >/dev/null)
server=$!
pids+=("$server")
await "$name-4"
"$CANAL" connect "$name-4" --linger 60s </dev/null >/dev/null 2>&1 &  # holds a child
connector=$!
pids+=("$connector")
started=0
while read -r -u 8 line; do
  [[ "$line" == *"client 1 connected"* ]] && { started=1; break; }
done
check "the child started" test "$started" == 1
kill -HUP "$server"
rest="$(cat <&8)"
wait "$server"
check "exec server exits 0 on SIGHUP with a child running" test $? == 0
check "the child was killed" grep -q "client 1: child [0-9]* was ended by signal 9" <<<"$rest"
wait "$connector"
check "its client saw the end of the stream and exited 0" test $? == 0
exec 8<&-

# --- socat and Python's socket as peers ----------------------------------------
if have socat; then
  echo "hello socat" | "$CANAL" serve "$name-5" --count 1 >"$out" &
  server=$!
  pids+=("$server")
  await "$name-5"
  check "socat client of the relay gets the server's stdin" equals "hello socat" \
    "$(printf 'from socat' | socat -t 30 - "UNIX-CONNECT:$CANAL_RUNTIME_DIR/$name-5")"
  wait "$server"
  check "the relay printed socat's data" equals "from socat" "$(cat "$out")"
  # canal connect against a socat server: a socket without canal's files
  # is a foreign byte-mode server.
  sock="$SHARED/socat.sock"
  socat "UNIX-LISTEN:$sock,fork" EXEC:'tr a-z A-Z' &
  pids+=($!)
  check "canal wait --poll sees the foreign socket" await "$sock"
  check "canal connect to a socat server" equals "SOCAT SERVED" \
    "$(echo "socat served" | "$CANAL" connect "$sock" --linger 30s)"
else
  skip "socat: not installed (scripts/setup.sh installs it)"
fi
if have python3; then
  "$CANAL" serve "$name-6" --echo --count 1 &
  server=$!
  pids+=("$server")
  await "$name-6"
  check "Python socket client of serve --echo" equals "python bytes" "$(python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sys.argv[1])
s.sendall(b"python bytes")
s.shutdown(socket.SHUT_WR)
data = b""
while True:
    chunk = s.recv(4096)
    if not chunk:
        break
    data += chunk
sys.stdout.write(data.decode())
' "$CANAL_RUNTIME_DIR/$name-6")"
  wait "$server"
  check "serve --echo --count 1 exits 0" test $? == 0
else
  skip "Python client: python3 is not installed"
fi

# --- other users: access flags and --expect-user ---------------------------------
as_nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }
as_daemon() { setpriv --reuid=1 --regid=1 --clear-groups "$@"; }
if [[ "$(id -u)" == 0 ]] && have setpriv && getent passwd 65534 >/dev/null &&
   as_nobody "$CANAL" --version >/dev/null 2>&1; then
  for policy in default local-users group; do
    sock="$SHARED/$policy.sock"
    case "$policy" in
      default) flags=() ;;
      local-users) flags=(--allow-local-users) ;;
      group) flags=(--allow-group 65534) ;;
    esac
    "$CANAL" serve "$sock" --message --echo "${flags[@]}" &
    server=$!
    pids+=("$server")
    await "$sock"
    if [[ "$policy" == default ]]; then
      check "default policy: another user is refused (5)" expect_code 5 as_nobody "$CANAL" call "$sock" x
    else
      check "${flags[*]} admits uid 65534" equals "x" "$(as_nobody "$CANAL" call "$sock" x)"
    fi
    if [[ "$policy" == group ]]; then
      check "--allow-group refuses a user outside the group (5)" expect_code 5 as_daemon "$CANAL" call "$sock" x
    fi
    kill -INT "$server"; wait "$server"
  done
  # A server run by another user: refused by default, admitted when named.
  nobody_dir="$(mktemp -d)"
  chown 65534:65534 "$nobody_dir"
  sock="$nobody_dir/svc.sock"
  # setpriv execs canal, so $! is the server (a function would be a subshell
  # that ignores SIGINT, as background jobs of scripts do).
  setpriv --reuid=65534 --regid=65534 --clear-groups \
    "$CANAL" serve "$sock" --message --echo --allow-local-users &
  server=$!
  pids+=("$server")
  await "$sock"
  check "a server of another user is refused by default (5)" expect_code 5 "$CANAL" call "$sock" x
  check "--expect-user nobody admits it" equals "x" "$("$CANAL" call "$sock" x --expect-user nobody)"
  check "--expect-user 65534 admits it" equals "x" "$("$CANAL" call "$sock" x --expect-user 65534)"
  check "--expect-user daemon refuses it (5)" expect_code 5 "$CANAL" call "$sock" x --expect-user daemon
  check "--expect-user any admits it" equals "x" "$("$CANAL" call "$sock" x --expect-user any)"
  check "connect --expect-user daemon refuses it (5)" expect_code 5 "$CANAL" connect "$sock" --expect-user daemon
  check "list shows the other user's listener" bash -c "'$CANAL' list '$nobody_dir' | grep -q '^svc.sock  *message  *duplex  *unlimited  *[0-9]*  *nobody$'"
  kill -INT "$server"; wait "$server"
  rm -rf "$nobody_dir"
else
  skip "other users: needs root, setpriv and uid 65534"
fi

# --- exit codes, help, version -------------------------------------------------------
check "wait: not found is 3" expect_code 3 "$CANAL" wait "nobody-$name"
check "wait --poll: timeout is 4" expect_code 4 "$CANAL" wait "nobody-$name" --poll --timeout 100ms
check "call: not found is 3" expect_code 3 "$CANAL" call "nobody-$name" x
check "no command is 2" expect_code 2 "$CANAL"
check "bad option is 2" expect_code 2 "$CANAL" serve x --bogus
check "errors are one line" test "$("$CANAL" wait "nobody-$name" 2>&1 | wc -l)" == 1
check "--version" bash -c "'$CANAL' --version | grep -q '^canal [0-9]*\.[0-9]*\.[0-9]*$'"
check "--help lists exit codes" bash -c "'$CANAL' --help | grep -q 'permission denied'"
for c in serve connect call wait list bench; do
  check "$c --help" bash -c "'$CANAL' $c --help | grep -q '^Usage: canal $c'"
done

# bench --json is one JSON object with both figures.
json="$("$CANAL" bench --duration 100ms --size 1024 --json)"
check "bench --json parses" python3 -c '
import json, sys
d = json.loads(sys.argv[1])
for side in ("canal", "raw"):
    for k in ("bytes_per_second", "latency_median_us", "latency_p99_us"):
        assert k in d[side], (side, k)
assert "throughput" in d["ratio"] and "latency_median" in d["ratio"]
' "$json"

echo "$passed passed, $failures failed, $skipped skipped"
[[ $failures == 0 ]]
