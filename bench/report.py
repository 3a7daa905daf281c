"""The markdown table and the PNG chart of gateway_bench.py, made from its JSON (`python bench/report.py` redraws them)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

NA = "—"


def _num(value: float | None, digits: int) -> str:
    return NA if value is None else f"{value:,.{digits}f}"


def _row(label: str, ours: float | None, ref: float | None, digits: int) -> str:
    ratio = f"{ours / ref:.2f}" if ours is not None and ref else NA
    return f"| {label} | {_num(ours, digits)} | {_num(ref, digits)} | {ratio} |"


def _ranges(values: list[int]) -> str:
    """[0, 1, 2, 14, 15, 29] -> "0–2, 14–15, 29"."""
    out: list[list[int]] = []
    for v in values:
        if out and v == out[-1][1] + 1:
            out[-1][1] = v
        else:
            out.append([v, v])
    return ", ".join(f"{a}–{b}" if a != b else f"{a}" for a, b in out)


def markdown(d: dict) -> str:
    m, v = d["machine"], d["versions"]
    lines = [
        "# This gateway against dask-gateway-server",
        "",
        f"One run of `make bench` ({d['total_seconds'] / 60:.1f} min{', --quick: not for keeping' if d['quick'] else ''}): "
        f"{m['cores']} cores ({m['cpu_model']}), {m['memory_gib']} GiB, Linux {m['kernel']}; "
        f"this gateway {v['this gateway']} at {v.get('this gateway commit', '?')}"
        f"{' (src/ had uncommitted changes when it ran)' if v.get('this gateway src/ changed since the commit') else ''} on Node {v['node']}; dask-gateway-server {v['dask-gateway-server']} "
        f"(UnsafeLocalBackend, its Go proxy, SimpleAuthenticator) on Python {v['python']}; client dask-gateway "
        f"{v['dask-gateway']}, dask/distributed {v['distributed']}. Both servers run at once and are driven "
        f"alternately by the same client code; heartbeat period {d['heartbeat_period']} s for both. "
        f"Load average {m['load_average_before'][0]:.2f} before, {m['load_average_after'][0]:.2f} after"
        + (f", up to {m['load_average_1min_peak_seen']:.1f} during the run" if "load_average_1min_peak_seen" in m else "")
        + " (the machine is shared with other work)."
        + (f" This gateway's relay path: `{d['relay_path']}`." if "relay_path" in d else "")
        + " Method: [bench/README.md](../README.md#gateway_benchpy).",
        "",
    ]
    header = len(lines)
    if "start" in d:
        s = d["start"]["stats"]
        lines += [
            _row(f"1. cluster start, `new_cluster()` to RUNNING, median s (n={s['ours']['n']})", s["ours"]["median"], s["reference"]["median"], 2),
            _row("1. cluster start, p95 s", s["ours"]["p95"], s["reference"]["p95"], 2),
            _row("1. floor: bare `dask scheduler` + preload to first heartbeat, median s (same for both)", s["floor"]["median"], s["floor"]["median"], 2),
            _row("1. start above the floor, median s", s["ours"]["median"] - s["floor"]["median"], s["reference"]["median"] - s["floor"]["median"], 2),
        ]
    if "pool" in d:
        p = d["pool"]["stats"]
        n = p["pool"]["running"]["n"]
        lines += [
            _row(f"1b. `new_cluster()` to RUNNING from the warm pool (this gateway) vs cold (the reference), median s (n={n})", p["pool"]["running"]["median"], p["reference"]["running"]["median"], 3),
            _row("1b. the same, p95 s", p["pool"]["running"]["p95"], p["reference"]["running"]["p95"], 3),
            _row("1b. first result (`new_cluster()`, `get_client()`, `scale(1)`, `submit(inc, 1).result()`) from the pool vs the reference, median s", p["pool"]["first_result"]["median"], p["reference"]["first_result"]["median"], 2),
            _row("1b. first result, this gateway without a pool (pool.size 0) vs the reference, median s", p["ours cold"]["first_result"]["median"], p["reference"]["first_result"]["median"], 2),
        ]
    if "api" in d:
        a = d["api"]
        names = {"list": "GET /api/v1/clusters/", "one": "GET /api/v1/clusters/&lt;name&gt;"}
        for endpoint, by_c in a["results"].items():
            for c, r in by_c.items():
                label = f"2. {names[endpoint]}, {c} client{'s' if c != '1' else ''}"
                lines.append(_row(f"{label}: requests/s", r["ours"]["per_second"], r["reference"]["per_second"], 0))
                lines.append(_row(f"{label}: p50 ms", r["ours"]["p50_ms"], r["reference"]["p50_ms"], 2))
                lines.append(_row(f"{label}: p99 ms", r["ours"]["p99_ms"], r["reference"]["p99_ms"], 2))
                lines.append(_row(f"{label}: requests per CPU-second of the server", *(
                    r[k]["per_second"] / (r[k]["server_cpu_percent"] / 100) for k in ("ours", "reference")), 0))
        lines.append(_row(f"2. accepting {a['clusters']} cluster requests one after another (`submit()`), s",
                          a["create_seconds"]["ours"], a["create_seconds"]["reference"], 1))
    if "relay" in d:
        r = d["relay"]
        med, rtt, ratio = r["median_mibps"], r["rtt_ms"], r["relayed_over_direct"]
        for kind, word in (("download_mibps", "download (scheduler → client)"), ("upload_mibps", "upload (client → scheduler)")):
            lines.append(_row(f"3. relayed {word}, MiB/s, median", med["ours relayed"][kind], med["reference relayed"][kind], 0))
            lines.append(_row(f"3. direct TLS {word} to the same scheduler (ceiling), MiB/s", med["ours direct"][kind], med["reference direct"][kind], 0))
            lines.append(_row(f"3. relayed / direct, {word.split()[0]} (paired by round)", ratio["ours"][kind], ratio["reference"][kind], 2))
        lines += [
            _row("3. relayed round trip p50, ms", rtt["ours relayed"]["p50"], rtt["reference relayed"]["p50"], 2),
            _row("3. relayed round trip p99, ms", rtt["ours relayed"]["p99"], rtt["reference relayed"]["p99"], 2),
            _row("3. direct round trip p50, ms", rtt["ours direct"]["p50"], rtt["reference direct"]["p50"], 2),
            _row("3. CPU of the relaying process during relayed transfers, % of one core (reference: its proxy)",
                 r["cpu_percent"]["ours relayed"].get("ours gateway"), r["cpu_percent"]["reference relayed"].get("reference proxy"), 0),
        ]
    if "scale" in d:
        s = d["scale"]["stats"]
        lines.append(_row(f"4. `scale({d['scale']['workers']})` to {d['scale']['workers']} connected workers, median s (n={s['ours']['n']})",
                          s["ours"]["median"], s["reference"]["median"], 1))
    if "api" in d:
        mem = d["api"]["memory"]
        n = d["api"]["clusters"]
        lines += [
            _row("5. resident memory idle, MiB (reference: gateway + proxy)", mem["idle_mib"]["ours"], mem["idle_mib"]["reference"], 0),
            _row(f"5. resident memory with {n} clusters, MiB", mem["clusters_mib"]["ours"], mem["clusters_mib"]["reference"], 0),
            _row(f"5. resident memory with {n} clusters after the load of 2, MiB", mem["clusters_after_load_mib"]["ours"], mem["clusters_after_load_mib"]["reference"], 0),
        ]
    if len(lines) > header:
        lines[header:header] = ["| figure | this gateway | reference | this / reference |", "|---|---|---|---|"]
    lines.append("")
    if "scaleout" in d:
        so = d["scaleout"]
        lines += [
            f"6. Scale-out simulation, this gateway alone: simulated clusters each heartbeating every {so['period']} s "
            f"(one new connection per heartbeat, as the scheduler preload does), measured over {so['seconds']:.0f} s after "
            f"{so['warmup_seconds']:.0f} s of warm-up. CPU is the gateway's, in % of one core; the load generator's is beside it.",
            "",
            "| clusters | heartbeats/s | gateway CPU % | load generator CPU % | gateway RSS MiB (max) | heartbeat p50 ms | p95 ms | p99 ms | over 100 ms | errors | RUNNING after |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for n, r in so["results"].items():
            h = r["heartbeats"]
            lines.append(f"| {int(n):,} | {h['per_second']:.0f} | {r['gateway_cpu_percent']:.1f} | {r['loadgen_cpu_percent']:.1f} | "
                         f"{r['rss_mib_max']:.0f} | {_num(h['p50_ms'], 2)} | {_num(h['p95_ms'], 2)} | {_num(h['p99_ms'], 2)} | "
                         f"{h['over_100ms']:,} of {h['requests']:,} | {h['errors']} | {r['running_after']:,.0f} |")
        lines.append("")
        for n, r in so["results"].items():
            seconds = sorted({int(t) for t, _ in r["heartbeats"].get("slow", [])})
            if seconds:
                lines.append(f"At {int(n):,} clusters the heartbeats slower than 100 ms were sent in these seconds of the "
                             f"measurement: {_ranges(seconds)}.")
        lines.append("")
    lines += [
        "Ratios are this gateway divided by the reference: below 1 is less time, fewer requests or less memory.",
        "",
        "Not measured:",
        "",
    ]
    unmeasured = dict(d.get("unmeasured", {}))
    unmeasured.setdefault("reference at 1,000 and 10,000 clusters (section 6)",
                          "the simulation puts cluster records in this gateway's state directory; the reference keeps its "
                          "clusters in a database it fills only through its own API, where each cluster also gets a real "
                          "key pair and scheduler process")
    lines += [f"- {what}: {why}." for what, why in unmeasured.items()]
    return "\n".join(lines) + "\n"


def chart(d: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = {"ours": "#1f77b4", "reference": "#ff7f0e", "floor": "#7f7f7f", "pool": "#2ca02c"}
    fig, axes = plt.subplots(2, 4, figsize=(19, 8.5))
    fig.suptitle(f"This gateway vs dask-gateway-server {d['versions']['dask-gateway-server']} "
                 f"({d['machine']['cores']} cores, one run)")

    def bars(ax, groups: list[str], series: dict[str, list[float]], title: str, ylabel: str) -> None:
        width = 0.8 / len(series)
        for j, (name, values) in enumerate(series.items()):
            xs = [i + (j - (len(series) - 1) / 2) * width for i in range(len(groups))]
            ax.bar(xs, values, width, label=name, color=colors.get(name.split()[0]), alpha=1 if j % 2 == 0 or "floor" in name else 0.6)
        ax.set_xticks(range(len(groups)), groups)
        ax.set_title(title)
        ax.set_ylabel(ylabel)
        ax.legend(fontsize=8)

    if "start" in d:
        s = d["start"]["stats"]
        bars(axes[0][0], ["median", "p95"], {k: [s[k]["median"], s[k]["p95"]] for k in ("ours", "reference", "floor")},
             "1. cluster start", "seconds")
    if "pool" in d:
        p = d["pool"]["stats"]
        bars(axes[0][1], ["to RUNNING", "first result"],
             {k: [p[k]["running"]["median"], p[k]["first_result"]["median"]] for k in ("pool", "ours cold", "reference")},
             "1b. warm pool (median)", "seconds")
    if "api" in d:
        res = d["api"]["results"]
        groups = [f"{e} ×{c}" for e in res for c in res[e]]
        bars(axes[0][2], groups, {k: [res[e][c][k]["per_second"] for e in res for c in res[e]] for k in ("ours", "reference")},
             f"2. API requests/s, {d['api']['clusters']} clusters", "requests/s")
        axes[0][2].set_yscale("log")
        bars(axes[0][3], groups, {k: [res[e][c][k]["p99_ms"] for e in res for c in res[e]] for k in ("ours", "reference")},
             "2. API p99 latency", "ms")
        axes[0][3].set_yscale("log")
        mem = d["api"]["memory"]
        bars(axes[1][2], ["idle", f"{d['api']['clusters']} clusters", "after load"],
             {k: [mem["idle_mib"][k], mem["clusters_mib"][k], mem["clusters_after_load_mib"][k]] for k in ("ours", "reference")},
             "5. resident memory", "MiB")
    if "relay" in d:
        med = d["relay"]["median_mibps"]
        bars(axes[1][0], ["download", "upload"],
             {p: [med[p]["download_mibps"], med[p]["upload_mibps"]] for p in ("ours relayed", "ours direct", "reference relayed", "reference direct")},
             "3. scheduler traffic", "MiB/s")
    if "scale" in d:
        s = d["scale"]["stats"]
        bars(axes[1][1], [f"scale({d['scale']['workers']})"], {k: [s[k]["median"]] for k in ("ours", "reference")},
             "4. scale to connected workers", "seconds")
    for row in axes:
        for ax in row:
            if not ax.has_data():
                ax.set_axis_off()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parent / "results")
    data = json.loads((out / "gateway.json").read_text())
    (out / "gateway.md").write_text(markdown(data))
    chart(data, out / "gateway.png")
