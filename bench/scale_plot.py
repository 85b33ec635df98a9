"""The PNG of `make bench-scale`: the ladder with one and two worker hosts, CPU per host at
saturation, and the pipeline around the loss of a worker host."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display: render to a file
import matplotlib.pyplot as plt  # noqa: E402


def draw(result: dict[str, Any], path: Path) -> None:
    fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(16, 5))
    cap = result["settings"]["cap_cores_per_worker_host"]
    fig.suptitle(
        f"make bench-scale {result['timestamp']}: worker hosts capped at {cap:g} core each, "
        f"scaleout_ratio {result['scaleout_ratio']} — {result['machine']['cpus']} cores "
        f"{result['machine']['cpu_model']}",
        fontsize=10,
    )
    _ladder(ax1, result)
    _hosts(ax2, result)
    _loss(ax3, result)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _ladder(ax: Any, result: dict[str, Any]) -> None:
    top = 0.0
    one, two = result["runs"]
    control = result["control_one_host_double_cap"]
    for run, color, style in (
        (one, "tab:blue", "o-"),
        (control, "tab:green", "s--"),
        (two, "tab:orange", "o-"),
    ):
        steps = run["ladder"]
        offered = [s["offered_per_s"] for s in steps]
        done = [s["completed_per_s"] for s in steps]
        n = run["worker_hosts"]
        each = " each" if n > 1 else ""
        label = f"{n} worker host{'s' * (n > 1)} at {run['cap']:g} core{each}"
        ax.plot(offered, done, style, color=color, label=label, markersize=4)
        ax.axhline(run["completed_per_s"], color=color, linestyle=":", linewidth=1)
        top = max(top, *offered)
    ax.plot([0, top], [0, top], color="grey", linewidth=0.8, label="completed = offered")
    ax.set_xlabel(f"offered orders / s (open loop, {step_seconds(result)} s steps)")
    ax.set_ylabel("completed orders / s")
    ax.set_title("ladder to saturation (dotted: saturation point, as held)", fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)


def step_seconds(result: dict[str, Any]) -> str:
    """The ladder's step length as the run's settings record it ("?" when they do not)."""
    plan = ((result.get("settings") or {}).get("options") or {}).get("plan") or {}
    return f"{plan['step_s']:g}" if "step_s" in plan else "?"


def _hosts(ax: Any, result: dict[str, Any]) -> None:
    labels, cores, caps, notes = [], [], [], []
    one, two = result["runs"]
    for run in (one, result["control_one_host_double_cap"], two):
        for host, v in run["at_saturation"].get("hosts", {}).items():
            labels.append(f"{host}\n({run['worker_hosts']}×{run['cap']:g})")
            cores.append(v["cores"])
            caps.append(v["cap"])
            notes.append(f"throttled {v['throttled_per_s']:.2f} CPU-s/s" if v["cap"] else "no cap")
    x = range(len(labels))
    ax.bar(x, cores, color=["tab:grey" if c == 0 else "tab:green" for c in caps])
    for i, (c, cap, note) in enumerate(zip(cores, caps, notes, strict=True)):
        if cap:
            ax.hlines(cap, i - 0.4, i + 0.4, color="red", linewidth=1.5)
        ax.text(i, c + 0.02, f"{c:.2f}\n{note}", ha="center", fontsize=7)
    ax.set_ylim(0, max([*cores, *caps, 0.1]) * 1.3)
    ax.set_xticks(list(x), labels, fontsize=8)
    ax.set_ylabel("cores at the saturation step")
    ax.set_title("CPU per host (red: the host's quota)", fontsize=9)
    ax.grid(alpha=0.3, axis="y")


def _loss(ax: Any, result: dict[str, Any]) -> None:
    loss = result["node_loss"]
    rows = loss["timeline"]
    t = [r["t"] for r in rows]
    ax.plot(t, [r["accepted_per_s"] for r in rows], label="accepted / s", linewidth=1)
    ax.plot(t, [r["completed_per_s"] for r in rows], label="completed / s", linewidth=1)
    ax.plot(t, [r["backlog"] for r in rows], label="in the pipeline", linewidth=1.5)
    ax.axvline(0, color="red", linewidth=1, label="worker host w2 killed")
    if loss.get("actors_back_s") is not None:
        ax.axvline(loss["actors_back_s"], color="grey", linewidth=1, linestyle=":",
                   label=f"its actors alive on w1 ({loss['actors_back_s']:g} s)")  # fmt: skip
    if loss.get("load_ended_s") is not None:
        ax.axvline(loss["load_ended_s"], color="black", linewidth=1, linestyle=":",
                   label=f"load ended ({loss['load_ended_s']:g} s)")  # fmt: skip
    if loss["recovered_s"] is not None:
        ax.axvline(loss["recovered_s"], color="green", linewidth=1, linestyle="--",
                   label=f"recovered ({loss['recovered_s']:g} s)")  # fmt: skip
    ax.set_xlabel("seconds since the kill")
    ax.set_ylabel("orders")
    ax.set_title(
        f"node loss at {loss['offered_per_s']:g}/s: {loss['accepted']} accepted, "
        f"{loss['lost']} lost, {loss['oversold']} oversold",
        fontsize=9,
    )
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
