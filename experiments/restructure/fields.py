"""Digests for hashes.sh: field sets of JSON outputs (whose values are timings), plan.json without its run id,
layer caches seen by MONITOR, and a sweep's points."""
import hashlib, json, re, sys
from pathlib import Path


def digest(text):
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def key_paths(value, prefix=""):
    """Every key path of a JSON value (objects recursively; arrays by their elements' paths)."""
    out = set()
    if isinstance(value, dict):
        for k, v in value.items():
            out.add(prefix + k)
            out |= key_paths(v, prefix + k + ".")
    elif isinstance(value, list):
        for v in value:
            out |= key_paths(v, prefix + "[].")
    return out


def keys(path):
    text = Path(path).read_text()
    lines = [text] if path.endswith(".json") else [l for l in text.splitlines() if l.strip()]
    paths = set()
    for line in lines:
        paths |= key_paths(json.loads(line))
    # statuses are part of the shape: their kinds (ran, skipped: outputs_exist, ...) without messages.
    if path.endswith(".jsonl"):
        for line in lines:
            st = json.loads(line).get("status")
            paths.add("status=" + (st if isinstance(st, str) else json.dumps(sorted(st))))
    names = sorted(paths)
    return f"{digest(chr(10).join(names))} ({len(names)} paths)"


def plan(path):
    p = json.loads(Path(path).read_text())
    p.pop("run_id", None)
    return digest(json.dumps(p, sort_keys=True))


def unrepr(s):
    """Undo redis' sdscatrepr quoting of one argument (without the surrounding quotes)."""
    out, i = bytearray(), 0
    esc = {"n": 10, "r": 13, "t": 9, "a": 7, "b": 8, '"': 34, "\\": 92}
    while i < len(s):
        c = s[i]
        if c == "\\":
            n = s[i + 1]
            if n == "x":
                out.append(int(s[i + 2 : i + 4], 16))
                i += 4
                continue
            out.append(esc[n])
            i += 2
            continue
        out += c.encode("latin-1")
        i += 1
    return bytes(out)


ARG = re.compile(r'"((?:[^"\\]|\\.)*)"')


def caches(path):
    seen = {}
    with open(path, encoding="latin-1") as f:
        for line in f:
            args = ARG.findall(line)
            if len(args) < 3 or args[0].upper() != "SET":
                continue
            key = unrepr(args[1]).decode()
            m = re.match(r"run:[^:]+:c:(\d+):(\d+):(\d+)$", key)
            if m:
                seen[tuple(map(int, m.groups()))] = hashlib.sha256(unrepr(args[2])).hexdigest()
    if not seen:
        print("caches: none seen")
        return
    whole = digest("".join(f"{k}{v}" for k, v in sorted(seen.items())))
    print(f"caches {len(seen)} values {whole}")


def sweep(path):
    for rec in sorted(Path(path, "points").glob("*/point.json")):
        r = json.loads(rec.read_text())
        row = r["row"]
        mem = row.get("memory_mb")
        model = [row.get(k) for k in ("predicted_peak_mb", "predicted_step_ms_p50", "predicted_step_ms_p95",
                                      "projected_step_ms_p50", "predicted_cost_usd_per_step",
                                      "projected_cost_usd_per_step")]
        print(f"sweep {rec.parent.name} config {r['config_sha256'][:16]} memory {mem} "
              f"model {digest(json.dumps(model))} weights {str(row.get('weights_sha256'))[:16]} "
              f"status {row.get('status')}")


if __name__ == "__main__":
    what, arg = sys.argv[1], sys.argv[2]
    out = {"keys": keys, "plan": plan, "caches": caches, "sweep": sweep}[what](arg)
    if out is not None:
        print(out)
