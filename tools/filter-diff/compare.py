#!/usr/bin/env python3
"""Compares the Go oracle's verdicts with aclc-matcher's (tools/filter-diff).

    compare.py CASES GO_VERDICTS ACLC_VERDICTS [MISMATCHES_OUT]

Counts, per case: both refusing the document, or one alone; per flow the verdict label
(dropped, accepted without a rule, by the flow cache, or by rule n, which must be the rule the
client stops at); per capability question the capabilities and their values, compared as JSON
values (Go passes the raw text through, `1e2`; aclc writes the number, `100.0`); and any
disagreement between aclc's fast and reference matchers. Exits 1 on any difference."""
import collections, decimal, json, sys


def value(text):
    return json.loads(text, parse_float=decimal.Decimal, parse_int=decimal.Decimal)


def caps(answer):
    return {name: [value(v) for v in values] for name, values in answer.items()}


def main():
    if len(sys.argv) not in (4, 5):
        sys.exit(__doc__)
    cases = {}
    for line in open(sys.argv[1]):
        case = json.loads(line)
        cases[case["id"]] = case
    go = [json.loads(line) for line in open(sys.argv[2])]
    aclc = [json.loads(line) for line in open(sys.argv[3])]
    stats, found = collections.Counter(), []
    if len(go) != len(cases) or len(aclc) != len(cases):
        sys.exit(f"compare.py: {len(cases)} cases, {len(go)} Go verdicts, {len(aclc)} aclc verdicts")
    for g, a in zip(go, aclc):
        if g["id"] != a["id"]:
            sys.exit(f"compare.py: verdicts out of step: {g['id']} / {a['id']}")
        case = cases[g["id"]]
        stats["cases"] += 1
        if "jsonerr" in g or "jsonerr" in a:
            if "jsonerr" in g and "jsonerr" in a:
                stats["documents refused by both"] += 1
            else:
                stats["DOCUMENT REFUSED BY ONE SIDE"] += 1
                found.append(["document", g["id"], g.get("jsonerr"), a.get("jsonerr")])
            continue
        for i in a["fast_vs_reference"]:
            stats["FAST AND REFERENCE MATCHERS DISAGREE"] += 1
            found.append(["fast_vs_reference", g["id"], i])
        for i, (gv, av) in enumerate(zip(g["v"], a["v"])):
            stats["flows"] += 1
            stats["flows allowed" if gv != "D" else "flows dropped"] += 1
            if gv != av:
                stats["FLOW VERDICTS DIFFER"] += 1
                found.append(["flow", g["id"], case["flows"][i], gv, av, a["why"][i]])
        for i, (gc, ac) in enumerate(zip(g["caps"], a["caps"])):
            stats["capability questions"] += 1
            if caps(gc) != caps(ac):
                stats["CAPABILITY ANSWERS DIFFER"] += 1
                found.append(["capabilities", g["id"], case["capq"][i], gc, ac])
    for key, n in sorted(stats.items()):
        print(f"  {key}: {n}")
    if len(sys.argv) == 5:
        with open(sys.argv[4], "w") as out:
            for f in found:
                out.write(json.dumps(f) + "\n")
    for f in found[:10]:
        print("  difference:", json.dumps(f)[:600])
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
