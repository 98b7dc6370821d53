#!/usr/bin/env python3
"""Reads tandem result objects with pyarrow, an independent reader, and checks every
row against the reference workload (docs/workload.md).

usage: read_results.py --seed S --first-id F --ids-per-node K INDEX=FILE...

For each file, child INDEX must hold exactly the IDs at positions
[INDEX*K, (INDEX+1)*K) of the run (fewer for the last child, as the file says), in
order, each with category and total_cents from the formulas, and the columns must
have the types a reader expects (id uint64, category string, total_cents uint64).
Prints one line per problem and "N files ok" at the end; exits 1 on any problem.
"""
import argparse
import sys

import pyarrow as pa
import pyarrow.parquet as pq

MASK = (1 << 64) - 1
CATEGORIES = ["Accessories", "Audio", "Books", "Cameras",
              "Computers", "Games", "Home", "Phones"]


def splitmix64(x):
    x = (x + 0x9E3779B97F4A7C15) & MASK
    z = x
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return z ^ (z >> 31)


def truth(seed, ident):
    r = splitmix64(seed ^ ident)
    quantity = 1 + ((r >> 8) % 100)
    price = 100 + ((r >> 16) % 100000)
    return CATEGORIES[r & 7], (price * quantity) & MASK


def check(path, index, seed, first, k):
    table = pq.read_table(path)
    problems = []
    want_types = {"id": pa.uint64(), "total_cents": pa.uint64()}
    for name, typ in want_types.items():
        if name not in table.column_names or table.schema.field(name).type != typ:
            problems.append(f"column {name} is not {typ}: schema {table.schema}")
    if "category" not in table.column_names:
        problems.append("no category column")
    if problems:
        return problems
    ids = table.column("id").to_pylist()
    cats = [str(c) for c in table.column("category").to_pylist()]
    totals = table.column("total_cents").to_pylist()
    start = (first + index * k) & MASK
    if not ids:
        return ["no rows"]
    if len(ids) > k:
        problems.append(f"{len(ids)} rows, more than {k}")
    for j, (ident, cat, total) in enumerate(zip(ids, cats, totals)):
        if ident != (start + j) & MASK:
            problems.append(f"row {j}: id {ident}, expected {(start + j) & MASK}")
            break
        want_cat, want_total = truth(seed, ident)
        if cat != want_cat or total != want_total:
            problems.append(f"row {j} (id {ident}): {cat}/{total}, expected {want_cat}/{want_total}")
            break
    return problems


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--first-id", type=int, required=True)
    ap.add_argument("--ids-per-node", type=int, required=True)
    ap.add_argument("files", nargs="+", metavar="INDEX=FILE")
    a = ap.parse_args()
    bad = 0
    for spec in a.files:
        index, path = spec.split("=", 1)
        try:
            problems = check(path, int(index), a.seed, a.first_id, a.ids_per_node)
        except Exception as e:  # an unreadable file is a problem to report, not a crash
            problems = [f"unreadable: {type(e).__name__}: {e}"]
        for p in problems:
            print(f"{path}: {p}")
        bad += bool(problems)
    if bad:
        print(f"{bad} of {len(a.files)} files differ from the truth")
        return 1
    print(f"{len(a.files)} files ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
