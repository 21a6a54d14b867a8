#!/usr/bin/env bash
# Stops what scripts/up.sh started: SIGTERM to every process in .conveyor/pids/,
# then waits for them to exit (workers drain running jobs for up to 30 s, then give
# unfinished ones back to the queue). Whatever is still alive after
# CONVEYOR_DOWN_TIMEOUT_S (default 45) seconds is killed; jobs it held are recovered
# when their lease runs out. PostgreSQL and Redis are left running.
set -euo pipefail
cd "$(dirname "$0")/.."
PIDS="$(pwd)/.conveyor/pids"
TIMEOUT_S="${CONVEYOR_DOWN_TIMEOUT_S:-45}"

names=()
pids=()
for f in "$PIDS"/*.pid; do
    [ -e "$f" ] || continue
    name="$(basename "$f" .pid)"
    pid="$(tr -dc '0-9' <"$f")"
    # Only signal a live process that is still one of ours (pids get reused).
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null &&
        ps -o args= -p "$pid" 2>/dev/null | grep -q 'conveyor-'; then
        names+=("$name")
        pids+=("$pid")
    else
        rm -f "$f"
    fi
done

if [ "${#pids[@]}" -eq 0 ]; then
    echo "[conveyor] nothing running"
    exit 0
fi

echo "[conveyor] stopping ${names[*]}"
for pid in "${pids[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
done

deadline=$((SECONDS + TIMEOUT_S))
while :; do
    left=()
    for i in "${!pids[@]}"; do
        if kill -0 "${pids[$i]}" 2>/dev/null; then
            left+=("${names[$i]}")
        else
            rm -f "$PIDS/${names[$i]}.pid"
        fi
    done
    [ "${#left[@]}" -eq 0 ] && break
    if [ "$SECONDS" -ge "$deadline" ]; then
        echo "[conveyor] still running after ${TIMEOUT_S}s, killing: ${left[*]}" >&2
        for i in "${!pids[@]}"; do
            kill -KILL "${pids[$i]}" 2>/dev/null || true
            rm -f "$PIDS/${names[$i]}.pid"
        done
        exit 1
    fi
    sleep 0.5
done
echo "[conveyor] stopped"
