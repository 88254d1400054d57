#!/usr/bin/env python3
"""bench/tsv2md.py RESULTS.tsv [NEW.tar.gz] — a peers.sh TSV as a Markdown table.

Sizes in MB (10^6 bytes), peak RSS in MiB; for diff rows, the patch as a share of NEW.tar.gz when given
(what a host would download without a patch). Columns are found by header name, so
TSVs with or without cpu_s work.
"""
import csv
import os
import sys


def main():
    rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
    gz = os.path.getsize(sys.argv[2]) if len(sys.argv) > 2 else None
    has_cpu = rows and "cpu_s" in rows[0]
    head = ["tool", "operation", "input", "bytes (MB, 10^6)"]
    if gz:
        head.append("% of new .tar.gz")
    head += ["wall s"] + (["cpu s"] if has_cpu else []) + ["peak RSS (MiB)", "status"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for r in rows:
        b = r["bytes"]
        cells = [r["tool"], r["operation"], r["input"],
                 f"{int(b) / 1e6:.2f}" if b.isdigit() else b]
        if gz:
            cells.append(f"{100 * int(b) / gz:.1f} %" if b.isdigit() and r["operation"] == "diff" else "")
        cells.append(r["wall_s"])
        if has_cpu:
            cells.append(r["cpu_s"])
        rss = r["max_rss_kb"]
        cells.append(f"{int(rss) / 1024:.0f}" if rss.isdigit() else rss)
        cells.append(r["status"])
        print("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")


if __name__ == "__main__":
    main()
