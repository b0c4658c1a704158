#!/usr/bin/env python3
"""How long one synced write takes on a file system: the floor under every batch vledger commits.

    benches/fsync_probe.py [DIR] [--writes N]

In DIR (default: the system's temporary directory), writes blocks of several sizes, each
followed by fdatasync, in two ways:

- append: to the end of a new file, as a write-ahead log grows (RocksDB's, PostgreSQL's). The
  file's size changes with every write, so each sync also writes the file's metadata.
- overwrite: over blocks of a file written and synced before, as a recycled log is written.
  Only the data is written.

Prints the mean microseconds per synced write of each. The file is removed at the end.
"""

import argparse
import os
import tempfile
import time

SIZES = (4096, 16384, 65536)


def synced_writes(directory: str, size: int, writes: int, overwrite: bool) -> float:
    """Mean seconds per write+fdatasync of `size` bytes, appending or overwriting."""
    fd, path = tempfile.mkstemp(prefix="vledger-fsync-", dir=directory)
    try:
        if overwrite:
            os.write(fd, b"\0" * size * writes)
            os.fsync(fd)
            os.lseek(fd, 0, os.SEEK_SET)
        block = b"x" * size
        started = time.perf_counter()
        for _ in range(writes):
            os.write(fd, block)
            os.fdatasync(fd)
        return (time.perf_counter() - started) / writes
    finally:
        os.close(fd)
        os.unlink(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dir", nargs="?", default=tempfile.gettempdir())
    parser.add_argument("--writes", type=int, default=1000)
    args = parser.parse_args()
    if args.writes < 1:
        parser.error("--writes must be at least 1")
    print(f"synced writes in {args.dir}, {args.writes} of each size")
    print(f"{'bytes':>8} {'append':>12} {'overwrite':>12}")
    for size in SIZES:
        append = synced_writes(args.dir, size, args.writes, overwrite=False)
        overwrite = synced_writes(args.dir, size, args.writes, overwrite=True)
        print(f"{size:>8} {append * 1e6:>9.0f} µs {overwrite * 1e6:>9.0f} µs")


if __name__ == "__main__":
    main()
