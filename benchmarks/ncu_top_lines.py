"""The hottest source lines of an Nsight Compute report (one that was taken with source counters, from code
built with -lineinfo), as a short text table instead of the GUI's source page:

    ncu -k regex:NAME -c 1 --set full --import-source yes -o /tmp/prof ./program
    ncu -i /tmp/prof.ncu-rep --page source --csv --print-source cuda > /tmp/src.csv
    python benchmarks/ncu_top_lines.py /tmp/src.csv [rows]

Prints the columns found, then the rows with the most executed instructions and those with the most stall
samples, each with its share of the kernel's total.
"""
import csv
import sys


def number(text):
    try:
        return float(text.replace(",", ""))
    except ValueError:
        return 0.0


def main(path, rows):
    with open(path, newline="") as f:
        lines = [line for line in f if line.strip()]
    # ncu prints a few lines of preamble (the kernel name) before the CSV header.
    start = next((i for i, line in enumerate(lines) if line.startswith('"#"') or '"Source"' in line), 0)
    table = list(csv.reader(lines[start:]))
    if not table:
        print("empty report", path)
        return 1
    header, body = table[0], table[1:]
    print("columns:", " | ".join(header))
    source_col = next((i for i, h in enumerate(header) if h in ("Source", "Address Source")), len(header) - 1)
    wanted = [("Instructions Executed", "instructions"), ("Warp Stall Sampling (All Samples)", "stall samples")]
    for name, label in wanted:
        col = next((i for i, h in enumerate(header) if h.startswith(name)), None)
        if col is None:
            print(f"(no '{name}' column)")
            continue
        total = sum(number(r[col]) for r in body if len(r) > col) or 1.0
        print(f"\n--- top {rows} lines by {label} (total {total:.4g})")
        ranked = sorted((r for r in body if len(r) > col), key=lambda r: -number(r[col]))
        for r in ranked[:rows]:
            print(f"{100 * number(r[col]) / total:6.2f}%  {r[0]:>6}  {r[source_col].strip()[:150]}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 25))
