#!/usr/bin/env python3
"""Runs the conformance suite: every `test_*` coroutine of every `test_*.py`.

    python tests/conformance/run.py [-v] [SUBSTRING ...]

A test taking a parameter `enc` runs once per encoding (`json`, `postcard`).
A test taking `srv` gets the module's shared server, started with the module's
`SERVER_ARGS`; other tests start their own. Tests marked `@background` (long
waits: HTTP timeouts, heartbeats) start first and run alongside the others.
Exit status 0 when every test passed.
"""

import asyncio
import importlib
import inspect
import os
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.dont_write_bytecode = True  # no __pycache__ in the work tree

import harness  # noqa: E402

TIMEOUT = 30


def collect(filters):
    tests = []
    for fname in sorted(os.listdir(HERE)):
        if not (fname.startswith("test_") and fname.endswith(".py")):
            continue
        mod = importlib.import_module(fname[:-3])
        for name, fn in vars(mod).items():
            if not (name.startswith("test_") and inspect.iscoroutinefunction(fn)):
                continue
            params = inspect.signature(fn).parameters
            encs = harness.ENCODINGS if "enc" in params else (None,)
            for enc in encs:
                full = f"{mod.__name__}.{name}" + (f"[{enc}]" if enc else "")
                if filters and not any(f in full for f in filters):
                    continue
                tests.append((mod, full, fn, enc, "srv" in params))
    return tests


class Shared:
    """The modules' shared servers, started on first use."""

    def __init__(self):
        self.servers = {}

    async def get(self, mod):
        if mod not in self.servers:
            self.servers[mod] = await harness.Server(*getattr(mod, "SERVER_ARGS", ())).start()
        return self.servers[mod]

    async def stop(self, mod):
        srv = self.servers.pop(mod, None)
        if srv:
            await srv.stop()


async def run_one(shared, mod, full, fn, enc, wants_srv, verbose):
    kwargs = {}
    srv = None
    if wants_srv:
        srv = await shared.get(mod)
        kwargs["srv"] = srv
    if enc:
        kwargs["enc"] = enc
    start = time.monotonic()
    try:
        await asyncio.wait_for(fn(**kwargs), getattr(fn, "timeout", TIMEOUT))
        ok, detail = True, ""
    except BaseException as e:  # noqa: BLE001 - a test's failure, whatever it is
        if isinstance(e, (KeyboardInterrupt, SystemExit)):
            raise
        ok = False
        if isinstance(e, asyncio.TimeoutError):
            detail = f"timed out after {getattr(fn, 'timeout', TIMEOUT)} s\n"
        else:
            detail = "".join(traceback.format_exception(e))
        if srv and verbose:
            detail += "--- server log (tail) ---\n" + srv.log_tail()
    return full, ok, time.monotonic() - start, detail


async def main(argv):
    verbose = "-v" in argv
    filters = [a for a in argv if not a.startswith("-")]
    tests = collect(filters)
    shared = Shared()
    started = time.monotonic()
    results = []

    def report(r):
        full, ok, secs, detail = r
        print(f"{'ok  ' if ok else 'FAIL'} {full} ({secs:.2f} s)", flush=True)
        if not ok:
            print("    " + detail.replace("\n", "\n    "), flush=True)
        results.append(r)

    background = [asyncio.create_task(run_one(shared, *t, verbose))
                  for t in tests if getattr(t[2], "background", False)]
    last_mod = None
    for t in tests:
        if getattr(t[2], "background", False):
            continue
        if last_mod is not None and t[0] is not last_mod:
            await shared.stop(last_mod)
        last_mod = t[0]
        report(await run_one(shared, *t, verbose))
    for task in background:
        report(await task)
    for mod in list(shared.servers):
        await shared.stop(mod)

    failed = [r for r in results if not r[1]]
    print(f"\n{len(results) - len(failed)} passed, {len(failed)} failed "
          f"in {time.monotonic() - started:.1f} s")
    for r in failed:
        print(f"  failed: {r[0]}")
    return 1 if failed or not results else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))
