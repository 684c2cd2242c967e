#!/usr/bin/env bash
# Drives the real `canal` binary as separate processes (POSIX build): serve +
# wait + call, connect piping stdin, exit codes, --help, bench --json, and a
# clean stop on SIGINT. Synchronises with `canal wait --poll`, never sleeps.
#   tools_process_test.sh PATH/TO/canal
set -uo pipefail
CANAL="$1"
failures=0
check() {  # check DESCRIPTION COMMAND...: runs the command, counts a failure
  local what="$1"; shift
  if "$@"; then echo "ok: $what"; else echo "FAILED: $what"; failures=$((failures + 1)); fi
}
expect_code() {  # expect_code CODE COMMAND...
  local want="$1"; shift
  "$@" >/dev/null 2>&1
  local got=$?
  [[ "$got" == "$want" ]] || { echo "  exit code $got, wanted $want: $*"; return 1; }
}

export CANAL_RUNTIME_DIR="$(mktemp -d)"
chmod 700 "$CANAL_RUNTIME_DIR"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  rm -rf "$CANAL_RUNTIME_DIR"
}
trap cleanup EXIT
name="tools-sh-$$-$RANDOM"

# serve --echo, then call through a separate process.
"$CANAL" serve "$name" --message --echo &
server=$!
pids+=("$server")
check "wait --poll finds the server" "$CANAL" wait "$name" --poll --timeout 20s
check "call round trip" test "$("$CANAL" call "$name" "hello there")" == "hello there"
check "connect sends lines as messages" test \
  "$(printf 'one\ntwo\n' | "$CANAL" connect "$name" --message --linger 2s)" == \
  "$(printf 'one\ntwo')"
kill -INT "$server"
wait "$server"
check "serve exits 0 on SIGINT" test $? == 0

# connect piping stdin into a printing server that exits after one client.
out="$CANAL_RUNTIME_DIR/out.txt"
"$CANAL" serve "$name-2" --count 1 >"$out" &
server=$!
pids+=("$server")
check "wait --poll finds the second server" "$CANAL" wait "$name-2" --poll --timeout 20s
printf 'abc\ndef' | "$CANAL" connect "$name-2" --linger 0s
check "connect exits 0" test $? == 0
wait "$server"
check "serve --count 1 exits 0" test $? == 0
check "serve printed stdin" test "$(cat "$out")" == "$(printf 'abc\ndef')"

# Exit codes.
check "wait: not found is 3" expect_code 3 "$CANAL" wait "nobody-$name"
check "wait --poll: timeout is 4" expect_code 4 "$CANAL" wait "nobody-$name" --poll --timeout 100ms
check "call: not found is 3" expect_code 3 "$CANAL" call "nobody-$name" x
check "no command is 2" expect_code 2 "$CANAL"
check "bad option is 2" expect_code 2 "$CANAL" serve x --bogus
check "errors are one line" test "$("$CANAL" wait "nobody-$name" 2>&1 | wc -l)" == 1
check "--help exits 0" expect_code 0 "$CANAL" --help
check "--help lists exit codes" bash -c "'$CANAL' --help | grep -q 'permission denied'"
for c in serve connect call wait bench; do
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

echo "$failures failure(s)"
[[ $failures == 0 ]]
