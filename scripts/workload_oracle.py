#!/usr/bin/env python3
# The reference answer, computed from the formulas alone (docs/workload.md); the
# repository carries it so that scripts/test.sh can check tandem against it.
"""Exact answer for the reference workload (see workload.md).

usage: workload_oracle.py N [first_id] [seed]
prints: rows, id_sum and checksum (sum of total_cents), each u64 wrapping.
"""
import sys

MASK = (1 << 64) - 1


def splitmix64(x):
    x = (x + 0x9E3779B97F4A7C15) & MASK
    z = x
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return z ^ (z >> 31)


def main():
    n = int(sys.argv[1])
    first = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    seed = int(sys.argv[3]) if len(sys.argv) > 3 else 42
    checksum = 0
    id_sum = 0
    for i in range(first, first + n):
        r = splitmix64(seed ^ i)
        quantity = 1 + ((r >> 8) % 100)
        price = 100 + ((r >> 16) % 100000)
        checksum = (checksum + price * quantity) & MASK
        id_sum = (id_sum + i) & MASK
    print(f"rows={n} id_sum={id_sum} checksum={checksum}")


if __name__ == "__main__":
    main()
