"""`python -m bench.profile --out FILE`: a profile of first steps, the dispatch scenario with one worker
(issue 18: what explains a worker's CPU per first step on one machine against another).

    python -m bench.profile --out /tmp/worker.json          # py-spy on a real `parley worker`: speedscope JSON
    python -m bench.profile --out /tmp/worker.txt           # the same as collapsed stacks (flamegraph.pl, speedscope)
    python -m bench.profile --out /tmp/steps.prof --tool cprofile   # in-process instead (pstats; snakeviz reads it)

With py-spy (`pip install py-spy`; it attaches with ptrace, so it needs root or CAP_SYS_PTRACE) the
profile is of a real worker process under the dispatch load: N notifications made due at once, as
`python -m bench` runs them, every thread of it (RQ's main thread, the timer, the sending loop)
sampled while it is active. That covers what bench/phases.py does not: RQ's bookkeeping per job
and the timer's leasing. Without py-spy, `--tool cprofile` runs the same steps in this process
through gateway.delivery.runner.process (batches of MAX_BATCH at once, as the sending loop runs them,
without RQ or the timer); cProfile's own cost per call inflates small functions, so read its shares
as an order, not as µs.

Either way it prints the functions with the most own time (the time in the function itself, not in
what it calls), with their share and the µs per first step that share is of the measured CPU. With
py-spy, each thread's CPU comes from /proc (user and system apart) and its samples only share it out:
py-spy also counts a thread that is runnable but waiting for a CPU, which on two busy vCPUs skews the
threads against each other. py-spy sees Python frames only: time in C (uvloop's loop and socket calls,
hiredis, pydantic-core, the kernel) is the own time of the Python function that called into it, so
`Sends._run` (which runs uvloop's loop) stands for the event loop's own work.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import json
import os
import pstats
import shutil
import signal
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import uvloop

from bench import phases
from bench.env import BenchError, Env
from bench.scenario import REPO
from bench.seed import release, seed
from gateway.delivery import worker
from gateway.delivery.runner import process
from gateway.state.due import Leased

WARMUP = 500  # sent before profiling: the worker's templates, policy and scripts loaded, its heap grown
Stack = tuple[str, ...]  # root first, the running function last


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__.split("\n")[0] if __doc__ else None)  # fmt: skip
    parser.add_argument("--out", type=Path, required=True, help="the profile: .json speedscope or .txt collapsed "
                        "stacks (py-spy), a pstats file (cprofile)")  # fmt: skip
    parser.add_argument("--count", type=int, default=5000, help="first steps profiled (default 5000)")
    parser.add_argument("--tool", choices=("py-spy", "cprofile"), help="default: py-spy where it is installed")
    parser.add_argument("--rate", type=int, default=500, help="py-spy's samples per second (default 500)")
    parser.add_argument("--top", type=int, default=30, help="functions printed (default 30)")
    parser.add_argument("--blocking", action="store_true", help="py-spy pauses the worker for each sample: "
                        "whole stacks (without it ~a fifth are torn, so totals are low), but the worker then spent ~1.5x the CPU per step")  # fmt: skip
    return parser.parse_args(argv)


def py_spy() -> str | None:
    beside = Path(sys.executable).parent / "py-spy"  # a virtualenv's, run without activating it
    return str(beside) if beside.exists() else shutil.which("py-spy")


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    tool = args.tool or ("py-spy" if py_spy() else "cprofile")
    if tool == "py-spy" and py_spy() is None:
        print("python -m bench.profile: py-spy is not installed (pip install py-spy), or use --tool cprofile",
              file=sys.stderr)  # fmt: skip
        return 2
    if args.tool is None and tool == "cprofile":
        print("   py-spy is not installed: profiling in-process with cProfile", file=sys.stderr)
    try:
        with Env() as env:
            if tool == "py-spy":
                samples, cpu = with_py_spy(env, args.out, args.count, args.rate, blocking=args.blocking)
                us = {tid: (user + system) * 1e6 / args.count for tid, (user, system) in cpu.items()}
                print(f"py-spy, one worker, {args.count} first steps: {sum(us.values()):.0f} µs of the worker's "
                      "CPU each (/proc), by thread:")  # fmt: skip
                print(threads(samples, cpu, args.count))
                print(top(attribute(samples, us), args.top))
            else:
                stats, cpu_us = with_cprofile(env, args.out, args.count)
                print(f"cProfile, in-process, {args.count} first steps: {cpu_us:.0f} µs of CPU each (profiled)")
                stats.sort_stats("tottime").print_stats(args.top)
    except BenchError as exc:
        print(f"python -m bench.profile: {exc}", file=sys.stderr)
        return 1
    print(f"profile written to {args.out}")
    return 0


# -- py-spy on a worker ----------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    tid: int  # the thread's native id, as /proc/PID/task/ names it
    thread: str  # its Python name: MainThread (RQ), parley-timer, parley-sends
    stack: Stack
    weight: float


def with_py_spy(
    env: Env, out: Path, count: int, rate: int, *, blocking: bool = False
) -> tuple[list[Sample], dict[int, tuple[float, float]]]:
    """py-spy on one worker while it sends `count` first steps made due at once; the samples, and each of
    the worker's threads' CPU seconds (user, system) over the same time, from /proc."""
    spy = py_spy()
    assert spy is not None
    (proc,) = env.workers(1)
    try:
        _dispatch(env, seed(env, phases.EVENT, WARMUP))
        ids = seed(env, phases.EVENT, count)
        fmt = "speedscope" if out.suffix == ".json" else "raw"
        log = (env.root / "py-spy.log").open("wb")
        # --function: one entry per function, not per line; --threads: the thread at each stack's root;
        # --nonblocking: the worker is never paused to be read (some torn stacks, no added wait).
        cmd = [spy, "record", "--pid", str(proc.pid), "--rate", str(rate), "--format", fmt, "--output", str(out),
               "--function", "--threads", *([] if blocking else ["--nonblocking"])]  # fmt: skip
        spying = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()
        try:
            time.sleep(1.0)  # attached and sampling (it reports nothing sooner)
            if spying.poll() is not None:
                raise BenchError(f"py-spy stopped: {(env.root / 'py-spy.log').read_text(errors='replace')}")
            before = thread_cpu(proc.pid)
            _dispatch(env, ids)
            after = thread_cpu(proc.pid)
        finally:
            spying.send_signal(signal.SIGINT)  # py-spy writes its file on Ctrl-C
            try:
                spying.wait(timeout=60)
            except subprocess.TimeoutExpired:
                spying.kill()
                spying.wait()
        if not out.exists():
            raise BenchError(f"py-spy wrote no profile: {(env.root / 'py-spy.log').read_text(errors='replace')}")
    finally:
        env.stop_all([proc])
    cpu = {
        tid: (u - before.get(tid, (0.0, 0.0))[0], s - before.get(tid, (0.0, 0.0))[1]) for tid, (u, s) in after.items()
    }
    return (speedscope(out) if fmt == "speedscope" else collapsed(out)), cpu


def thread_cpu(pid: int) -> dict[int, tuple[float, float]]:
    """Each thread's user and system CPU seconds so far (Linux /proc/PID/task)."""
    found: dict[int, tuple[float, float]] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        found[int(task.name)] = (int(fields[11]) / tick, int(fields[12]) / tick)
    return found


def _dispatch(env: Env, ids: list[str], timeout: float = 300.0) -> None:
    """Make `ids` due at once and wait until the worker sent each one's first step."""
    before = env.counter(phases.SENT)
    started = time.monotonic()
    release(env.client, ids, int(time.time() * 1000))
    while env.counter(phases.SENT) < before + len(ids):
        if time.monotonic() - started > timeout:
            raise BenchError(f"only {env.counter(phases.SENT) - before} of {len(ids)} sent in {timeout:.0f} s")
        time.sleep(0.01)


def speedscope(path: Path) -> list[Sample]:
    """py-spy's speedscope file: one sampled profile per thread, named `Thread 123 "parley-sends"`, its
    stacks root first (py-spy's `thread (123): parley-sends` frame dropped)."""
    data = json.loads(path.read_text())
    frames = [_frame(f["name"], str(f.get("file") or ""), f.get("line")) for f in data["shared"]["frames"]]
    found: list[Sample] = []
    for profile in data["profiles"]:
        tid, thread = _thread(str(profile.get("name", "")))
        for sample, weight in zip(profile["samples"], profile["weights"], strict=True):
            stack = tuple(frames[i] for i in sample if not frames[i].startswith("thread ("))
            found.append(Sample(tid, thread, stack, float(weight)))
    return found


def collapsed(path: Path) -> list[Sample]:
    """py-spy's raw output: `thread (123): parley-sends;frame;...;frame count` per line."""
    found: list[Sample] = []
    for line in path.read_text().splitlines():
        stack, _, weight = line.rpartition(" ")
        if stack:
            first, *rest = stack.split(";")
            tid, thread = _thread(first)
            found.append(Sample(tid, thread, tuple(rest), float(weight)))
    return found


def _thread(name: str) -> tuple[int, str]:
    """`Thread 123 "parley-sends"` or `thread (123): parley-sends` -> (123, parley-sends)."""
    digits = "".join(c if c.isdigit() else " " for c in name).split()
    tid = int(digits[0]) if digits else 0
    if name.count('"') >= 2:
        return tid, name.split('"')[1]
    return tid, name.partition(": ")[2] or name


def _frame(name: str, file: str, line: object) -> str:
    path = Path(file)
    if "site-packages" in path.parts:  # the package's path, not the virtualenv's
        shown = "/".join(path.parts[path.parts.index("site-packages") + 1 :])
    elif path.is_relative_to(REPO):
        shown = str(path.relative_to(REPO))
    else:
        shown = path.name
    return f"{name} ({shown}:{line})" if line is not None else f"{name} ({shown})"


def threads(samples: list[Sample], cpu: dict[int, tuple[float, float]], count: int) -> str:
    """Each thread's CPU per first step, user and system, and its samples. py-spy counts a thread that is
    runnable but not running (waiting for a CPU) as active: its samples over- or understate threads against
    each other, so CPU comes from /proc and the samples only say where in a thread it went."""
    names = {s.tid: s.thread for s in samples}
    per: defaultdict[int, float] = defaultdict(float)
    for s in samples:
        per[s.tid] += s.weight
    lines = []
    for tid, (user, system) in sorted(cpu.items(), key=lambda kv: -sum(kv[1])):
        if user + system > 0 or per[tid]:
            lines.append(f"  {names.get(tid, f'thread {tid}'):<16} {(user + system) * 1e6 / count:6.1f} µs "
                         f"(user {user * 1e6 / count:.1f}, system {system * 1e6 / count:.1f}), "
                         f"{per[tid] / (sum(per.values()) or 1.0):.0%} of the samples")  # fmt: skip
    return "\n".join(lines)


def attribute(samples: list[Sample], us: dict[int, float]) -> list[tuple[Stack, float]]:
    """Each sample as µs per first step: its thread's CPU (from /proc) shared out over its samples."""
    per: defaultdict[int, float] = defaultdict(float)
    for s in samples:
        per[s.tid] += s.weight
    return [(s.stack, us.get(s.tid, 0.0) * s.weight / per[s.tid]) for s in samples if per[s.tid]]


def top(stacks: list[tuple[Stack, float]], count: int) -> str:
    """The functions with the most own time (in them, not in what they call), with their total time."""
    own: defaultdict[str, float] = defaultdict(float)
    total: defaultdict[str, float] = defaultdict(float)
    for stack, us in stacks:
        if stack:
            own[stack[-1]] += us
        for frame in set(stack):
            total[frame] += us
    whole = sum(own.values()) or 1.0
    lines = [f"{'own':>6} {'µs':>6} {'total µs':>8}  function (µs per first step)"]
    for frame, us in sorted(own.items(), key=lambda kv: -kv[1])[:count]:
        lines.append(f"{us / whole:6.1%} {us:6.1f} {total[frame]:8.1f}  {frame}")
    return "\n".join(lines)


# -- cProfile in-process ---------------------------------------------------------------------


def with_cprofile(env: Env, out: Path, count: int) -> tuple[pstats.Stats, float]:
    """`count` first steps run in this process as the sending loop runs them (MAX_BATCH at once), under
    cProfile; the stats (also dumped to `out`) and the CPU µs per first step while profiled."""
    items = phases.leased(env, phases.WARMUP + count)
    rt = phases.runtime(env)
    loop = uvloop.new_event_loop()

    async def run(batch: list[Leased]) -> None:
        for start in range(0, len(batch), worker.MAX_BATCH):
            await asyncio.gather(*(process(rt, item) for item in batch[start : start + worker.MAX_BATCH]))

    profiler = cProfile.Profile()
    gc.disable()  # as in a worker (gateway/delivery/sends.py)
    try:
        loop.run_until_complete(run(items[: phases.WARMUP]))
        cpu = time.thread_time()
        profiler.enable()
        loop.run_until_complete(run(items[phases.WARMUP :]))
        profiler.disable()
        cpu = time.thread_time() - cpu
    finally:
        gc.enable()
        loop.run_until_complete(rt.store.close())
        loop.close()
    env.clear()
    profiler.dump_stats(out)
    return pstats.Stats(profiler, stream=sys.stdout).strip_dirs(), cpu * 1e6 / count


if __name__ == "__main__":
    sys.exit(main())
