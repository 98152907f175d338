# shellcheck shell=bash
# CPU accounting for the benchmarks, from /proc/<pid>/stat (clock ticks; `getconf CLK_TCK` per s).

# CPU ticks (user + system, with reaped children) of every process named $1.
cpu_ticks() {
  local pid
  for pid in $(pgrep -x "$1"); do awk '{print $14 + $15 + $16 + $17}' "/proc/$pid/stat" 2>/dev/null || true; done |
    awk '{s += $1} END {print s + 0}'
}

# CPU ticks (user + system) of process $1 itself; 0 when it is gone or empty.
pid_ticks() {
  [ -n "$1" ] && awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0
}

# CPU ticks of the children this shell has reaped (a finished command's whole use).
reaped_ticks() {
  awk '{print $16 + $17}' "/proc/$$/stat"
}
