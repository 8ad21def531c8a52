"""Parses a Prometheus text exposition from standard input with prometheus_client's parser,
checks the rules a scraper relies on, and prints every sample as JSON lines
{"name", "labels", "value"}. Exits 1 with a message naming the problem otherwise.

Checked: the text parses; every family has HELP and TYPE; counters end in _total (the parser
strips the suffix from the family name, so a counter family's samples must carry it); no family
appears twice; values are finite numbers.
"""

import json
import math
import sys

from prometheus_client.parser import text_string_to_metric_families


def main():
    text = sys.stdin.read()
    seen = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            name = line.split()[2]
            if name in seen:
                print(f"FAIL: family {name} declared twice", file=sys.stderr)
                sys.exit(1)
            seen.add(name)
            kind = line.split()[3]
            if kind == "counter" and not name.endswith("_total"):
                print(f"FAIL: counter {name} does not end in _total", file=sys.stderr)
                sys.exit(1)
    helps = {line.split()[2] for line in text.splitlines() if line.startswith("# HELP ")}
    missing = seen - helps
    if missing:
        print(f"FAIL: no HELP for {sorted(missing)}", file=sys.stderr)
        sys.exit(1)
    try:
        families = list(text_string_to_metric_families(text))
    except Exception as error:  # the parser raises ValueError and others
        print(f"FAIL: the exposition does not parse: {error}", file=sys.stderr)
        sys.exit(1)
    for family in families:
        for sample in family.samples:
            if not math.isfinite(sample.value):
                print(f"FAIL: {sample.name} is {sample.value}", file=sys.stderr)
                sys.exit(1)
            print(json.dumps({"name": sample.name, "labels": sample.labels, "value": sample.value}))


if __name__ == "__main__":
    main()
