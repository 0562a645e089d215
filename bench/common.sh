# Shared by bench/run and bench/faults (sourced; each defines `die` first).

# Servers run as users run them: with RUST_BACKTRACE set, `wasmtime serve` captures a backtrace
# for an error it makes and handles on every request (about 4 % of a fresh GET's CPU, profiled).
unset RUST_BACKTRACE RUST_LIB_BACKTRACE

# The limits across accounts, each set to a value no run reaches, so that every PUT pays for its
# counters (one read of the pumping guard's blocks, five increments) as on the defaults.
UNREACHED=10000000
LIMIT_SETTINGS=(PHONE_CODES_PER_NUMBER_PER_HOUR PHONE_CODES_PER_NUMBER_PER_DAY PHONE_CODES_PER_RANGE_PER_HOUR
  PHONE_PUMPING_MIN_CODES PHONE_PUMPING_MIN_CODES_PER_COUNTRY)

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# wait_port PORT PID LOG: until the server PID accepts connections on PORT; fails (showing LOG)
# when it exits first or 300 s pass.
wait_port() {
  local deadline=$((SECONDS + 300))
  until (echo >"/dev/tcp/127.0.0.1/$1") 2>/dev/null; do
    if ! kill -0 "$2" 2>/dev/null; then
      cat "$3" >&2
      die "the server exited before listening on port $1 (its log is above)"
    fi
    [ "$SECONDS" -lt "$deadline" ] || { cat "$3" >&2; die "port $1 did not open within 300 s"; }
    sleep 0.1
  done
}
