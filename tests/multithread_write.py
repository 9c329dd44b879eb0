#!/usr/bin/env python3
"""The course's stress test: several threads write to one scull device at once.

Each thread opens the device in text mode "w" (write-only, so the open trims the device),
then writes its own digit in CHUNK-sized writes until it has written SIZE bytes. Each chunk
starts with its own offset (`@` and 14 digits), so that data written to the wrong place
shows. Run it under kmemleak: the driver must not leak, and afterwards the device must hold
SIZE bytes, in which every chunk is one whole write: its offset where it lies, then one
writer's digit throughout. A write is one call under the device's lock, so two writers'
data never share a chunk; a chunk that mixes them was torn.

    tests/multithread_write.py [--device /dev/scull0] [--threads 5] [--size-mib 512]
                               [--chunk-kib 1024]
"""

import argparse
import sys
import threading


HEADER = 15                         # "@" and the chunk's offset in 14 digits


def chunk_text(digit, at, length):
    """The chunk a writer of `digit` writes at offset `at`: its offset, then the digit."""
    return (f"@{at:014d}" + str(digit) * length)[:length]


def writer(device, digit, size, chunk, errors):
    try:
        with open(device, "w") as f:
            for at in range(0, size, chunk):
                f.write(chunk_text(digit, at, min(chunk, size - at)))
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


def check(device="/dev/scull0", threads=5, size=512 << 20, chunk=1 << 20):
    """Returns None when the device holds `size` bytes of whole chunks, each in its place and
    of one writer's digit, else why not."""
    digits = "".join(str(n % 10) for n in range(threads)).encode()
    total = 0
    with open(device, "rb") as f:
        while True:
            block = f.read(chunk)
            if not block:
                break
            if block[:HEADER] != f"@{total:014d}".encode()[:len(block)]:
                return f"the chunk at offset {total} starts {block[:HEADER]!r}: misplaced data"
            body = block[HEADER:]
            stray = body.translate(None, digits)
            if stray:
                return f"byte {stray[:1]!r} in the chunk at offset {total} is no writer's digit"
            if body.strip(body[:1]):
                return f"the chunk at offset {total} mixes writers' digits: a torn write"
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
    problem = check(args.device, args.threads, size, args.chunk_kib << 10)
    if problem:
        print(f"multithread_write: FAIL: {problem}")
        return 1
    print(f"multithread_write: {args.threads} threads wrote {args.size_mib} MiB each; "
          "the device holds whole chunks, each in its place")
    return 0


if __name__ == "__main__":
    sys.exit(main())
