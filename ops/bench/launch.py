"""Run the jobfleet CLI on a chosen event loop: ``python -m ops.bench.launch asyncio|uvloop ARGS``.

The CLI runs on uvloop whenever it is installed; hiding the module makes it fall back to asyncio's
own loop, which is what the "default event loop" comparison needs. Nothing else changes.
"""

import sys


def main() -> None:
    loop, argv = sys.argv[1], sys.argv[2:]
    if loop == "asyncio":
        sys.modules["uvloop"] = None  # type: ignore[assignment]  # `import uvloop` raises ImportError
    elif loop != "uvloop":
        raise SystemExit(f"unknown event loop {loop!r}: asyncio or uvloop")
    from cli.main import main as cli

    raise SystemExit(cli(argv))


if __name__ == "__main__":
    main()
