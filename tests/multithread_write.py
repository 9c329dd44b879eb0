#!/usr/bin/env python3
"""The course's stress test: several threads write to one scull device at once.

Each thread opens the device in text mode "w" (write-only, so the open trims the device),
then writes its own digit in CHUNK-sized writes until it has written SIZE bytes. Run it
under kmemleak: the driver must not leak, and afterwards the device must hold SIZE bytes,
each one some writer's digit.

    tests/multithread_write.py [--device /dev/scull0] [--threads 5] [--size-mib 512]
                               [--chunk-kib 1024]
"""

import argparse
import sys
import threading


def writer(device, digit, size, chunk, errors):
    try:
        block = str(digit) * chunk
        with open(device, "w") as f:
            for _ in range(size // chunk):
                f.write(block)
            f.write(str(digit) * (size % chunk))
    except Exception as exc:  # reported by the main thread
        errors.append(exc)


def run(device="/dev/scull0", threads=5, size=512 << 20, chunk=1 << 20):
    """Starts the writers, waits for them, and raises if any failed."""
    errors = []
    workers = [threading.Thread(target=writer, args=(device, n % 10, size, chunk, errors))
               for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    if errors:
        raise errors[0]


def check(device="/dev/scull0", threads=5, size=512 << 20):
    """Returns None when the device holds `size` bytes of writers' digits, else why not."""
    digits = "".join(str(n % 10) for n in range(threads)).encode()
    total = 0
    with open(device, "rb") as f:
        while True:
            block = f.read(1 << 20)
            if not block:
                break
            stray = block.translate(None, digits)
            if stray:
                return f"byte {stray[:1]!r} near offset {total} is no writer's digit"
            total += len(block)
    if total != size:
        return f"device holds {total} bytes, expected {size}"
    return None


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="/dev/scull0")
    parser.add_argument("--threads", type=int, default=5)
    parser.add_argument("--size-mib", type=int, default=512)
    parser.add_argument("--chunk-kib", type=int, default=1024)
    args = parser.parse_args()
    size = args.size_mib << 20
    run(args.device, args.threads, size, args.chunk_kib << 10)
    problem = check(args.device, args.threads, size)
    if problem:
        print(f"multithread_write: FAIL: {problem}")
        return 1
    print(f"multithread_write: {args.threads} threads wrote {args.size_mib} MiB each; "
          "the device holds their digits only")
    return 0


if __name__ == "__main__":
    sys.exit(main())
