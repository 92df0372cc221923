"""Compares what got a 302 (scan-load's `sent`) with the Redis counters (the
stats API) and the ClickHouse rows. Used by scan-load.sh and cluster.sh.

accounting.py DIR quiet   -> exit 0 when Redis and ClickHouse both match
accounting.py DIR report  -> PASS/FAIL lines on stdout, DIR/accounting.md and
                             DIR/checks.txt, exit 1 on any FAIL
accounting.py DIR loss    -> JSON on stdout: per sink and code, what was sent
                             and what is stored (no verdict)

DIR holds what the caller collected: stats-{code}.json (the stats API),
ch-by-code.tsv (code, rows, distinct scan ids, bots, QR rows) and
ch-by-channel.tsv (code, channel, is_bot, rows). Options:
  --runs A.json,B.json   scan-load reports whose `sent` add up (default DIR/gateway.json)
  --metrics M1,M2        /metrics texts whose loss counters add up (default DIR/metrics.txt)
  --ignore-prefix P      codes starting with P are not load codes (no "other codes" check)
"""
import json
import os
import re
import sys

d, mode = sys.argv[1], sys.argv[2]
opts = dict(zip(sys.argv[3::2], sys.argv[4::2]))
run_files = opts.get("--runs", os.path.join(d, "gateway.json")).split(",")
metric_files = opts.get("--metrics", os.path.join(d, "metrics.txt")).split(",")
ignore_prefix = opts.get("--ignore-prefix")


def load_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def tsv(path):
    try:
        with open(path) as f:
            return [line.rstrip("\n").split("\t") for line in f if line.strip()]
    except OSError:
        return []


def add(into, more):
    """Adds scan-load's nested `sent` counts of one run to another's."""
    for k, v in more.items():
        if isinstance(v, dict):
            add(into.setdefault(k, {}), v)
        else:
            into[k] = into.get(k, 0) + v


runs = [load_json(f) for f in run_files]
run = {"requests": 0, "status_counts": {}, "truncated": False, "sent": {}}
for r in runs:
    run["requests"] += r["requests"]
    run["truncated"] = run["truncated"] or r["truncated"]
    add(run["status_counts"], r["status_counts"])
    add(run["sent"], r["sent"])
sent = run["sent"]
codes = sorted(sent)
stats = {c: load_json(os.path.join(d, f"stats-{c}.json")) for c in codes}
by_code = {r[0]: [int(x) for x in r[1:]] for r in tsv(os.path.join(d, "ch-by-code.tsv")) if len(r) == 5}
by_chan = {}
for r in tsv(os.path.join(d, "ch-by-channel.tsv")):
    if len(r) == 4:
        key = (r[0], r[1] or "-")
        by_chan.setdefault(key, {"human": 0, "bot": 0})["bot" if r[2] == "1" else "human"] += int(r[3])

checks = []  # (ok, name, detail)


def check(name, pairs, extra_fail=None):
    """pairs: (label, sent, got); passes when every pair is equal."""
    bad = [f"{label}: sent {want}, got {got}" for label, want, got in pairs if want != got]
    if extra_fail:
        bad.append(extra_fail)
    checks.append((not bad, name, "; ".join(bad) if bad else ", ".join(f"{l}={w}" for l, w, _ in pairs[:5])))


for c in codes:
    s = sent[c]
    st = stats[c]
    if not isinstance(st, dict) or "total" not in st:
        checks.append((False, f"redis {c}", "stats unavailable"))
    else:
        pairs = [(k, s[k], st.get(k, 0)) for k in ("total", "human", "bot", "qr", "link")]
        got_ch = st.get("channels", {})
        for ch, cc in s["channel_classes"].items():
            for k in ("total", "human", "bot"):
                pairs.append((f"ch:{ch}:{k}", cc[k], got_ch.get(ch, {}).get(k, 0)))
        for ch, g in got_ch.items():
            if ch not in s["channel_classes"]:
                pairs.append((f"ch:{ch}:total", 0, g.get("total", 0)))
        check(f"redis {c}", pairs)
    row = by_code.get(c, [0, 0, 0, 0])
    rows, uniq, bots, qr = row
    pairs = [("rows", s["total"], rows), ("scan_ids", s["total"], uniq), ("human", s["human"], rows - bots),
             ("bot", s["bot"], bots), ("qr", s["qr"], qr), ("link", s["link"], rows - qr)]
    for ch, cc in s["channel_classes"].items():
        g = by_chan.get((c, ch), {"human": 0, "bot": 0})
        pairs.append((f"ch:{ch}:human", cc["human"], g["human"]))
        pairs.append((f"ch:{ch}:bot", cc["bot"], g["bot"]))
    for (code, ch), g in by_chan.items():
        if code == c and ch not in s["channel_classes"]:
            pairs.append((f"ch:{ch}:total", 0, g["human"] + g["bot"]))
    check(f"clickhouse {c}", pairs)
others = sorted(c for c in set(by_code) - set(codes) if not (ignore_prefix and c.startswith(ignore_prefix)))
check("clickhouse other codes", [("rows", 0, sum(by_code[o][0] for o in others))])

accounting_ok = all(ok for ok, _, _ in checks)
if mode == "quiet":
    sys.exit(0 if accounting_ok else 1)
if mode == "loss":
    out = {}
    for c in codes:
        s, st = sent[c], stats[c] if isinstance(stats[c], dict) else {}
        rows, uniq, bots, qr = by_code.get(c, [0, 0, 0, 0])
        out[c] = {
            "sent": {k: s[k] for k in ("total", "human", "bot")},
            "redis": {k: st.get(k) for k in ("total", "human", "bot")},
            "clickhouse": {"total": rows, "human": rows - bots, "bot": bots, "distinct_scan_ids": uniq},
        }
    json.dump(out, sys.stdout)
    sys.exit(0)

# Responses and the recorder's own loss counters.
n, counts = run["requests"], run["status_counts"]
got302 = counts.get("302", 0)
checks.insert(0, (got302 == n and not run["truncated"], "responses",
                  f"{got302} of {n} requests answered 302; statuses {json.dumps(counts)}"))
metrics = {}
for path in metric_files:
    try:
        with open(path) as f:
            for line in f:
                m = re.match(r"^(codelink_scans_(?:queued|dropped|lost|written)_total)(\{[^}]*\})? (\d+)$", line.strip())
                if m:
                    key = m.group(1) + (m.group(2) or "")
                    metrics[key] = metrics.get(key, 0) + int(m.group(3))
    except OSError:
        pass
dropped = metrics.get("codelink_scans_dropped_total")
lost = {k: v for k, v in metrics.items() if k.startswith("codelink_scans_lost_total")}
checks.append((dropped == 0, "recorder queue", f"codelink_scans_dropped_total {dropped}"))
checks.append((bool(lost) and all(v == 0 for v in lost.values()), "sink spools",
               ", ".join(f"{k} {v}" for k, v in lost.items()) or "no codelink_scans_lost_total lines"))

for ok, name, detail in checks:
    print(f"{'PASS' if ok else 'FAIL'}  {name}: {detail}")

# Markdown: per code and class, sent / Redis / ClickHouse.
md = ["| code | class | sent (302) | Redis | ClickHouse |", "|---|---|---:|---:|---:|"]
for c in codes:
    s, st = sent[c], stats[c] if isinstance(stats[c], dict) else {}
    rows, uniq, bots, qr = by_code.get(c, [0, 0, 0, 0])
    ch_vals = {"total": rows, "human": rows - bots, "bot": bots, "qr": qr, "link": rows - qr}
    for k in ("total", "human", "bot", "qr", "link"):
        mark = "" if s[k] == st.get(k) == ch_vals[k] else " ✗"
        md.append(f"| {c} | {k} | {s[k]} | {st.get(k, 'n/a')} | {ch_vals[k]}{mark} |")
    md.append(f"| {c} | distinct scan ids |  |  | {uniq}{'' if uniq == s['total'] else ' ✗'} |")
md.append("")
md.append("<details><summary>By channel (human / bot)</summary>")
md.append("")
md.append("| code | channel | sent | Redis | ClickHouse |")
md.append("|---|---|---:|---:|---:|")
for c in codes:
    got_ch = (stats[c] or {}).get("channels", {}) if isinstance(stats[c], dict) else {}
    for ch, cc in sent[c]["channel_classes"].items():
        r = got_ch.get(ch, {})
        g = by_chan.get((c, ch), {"human": 0, "bot": 0})
        mark = "" if (cc["human"], cc["bot"]) == (r.get("human"), r.get("bot")) == (g["human"], g["bot"]) else " ✗"
        md.append(f"| {c} | {ch} | {cc['human']} / {cc['bot']} | {r.get('human', 'n/a')} / {r.get('bot', 'n/a')} | {g['human']} / {g['bot']}{mark} |")
md.append("")
md.append("</details>")
reasons = {}
for c in codes:
    for k, v in ((stats[c] or {}).get("bot_reasons", {}) if isinstance(stats[c], dict) else {}).items():
        reasons[k] = reasons.get(k, 0) + v
md.append("")
md.append("Bot reasons (Redis, all codes): " + (", ".join(f"`{k}` {v}" for k, v in sorted(reasons.items())) or "none"))
with open(os.path.join(d, "accounting.md"), "w") as f:
    f.write("\n".join(md) + "\n")
with open(os.path.join(d, "checks.txt"), "w") as f:
    for ok, name, detail in checks:
        f.write(f"{'PASS' if ok else 'FAIL'}  {name}: {detail}\n")
sys.exit(0 if all(ok for ok, _, _ in checks) else 1)