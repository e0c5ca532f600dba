"""Run the slow-client benchmark: `make bench`, or `python -m tests.bench` in the virtualenv.

For each of the four servers (tests/bench/servers.py), in one run on one machine:

1. Throughput: requests per second for the small page and for a static file, with clients
   sending back to back over keep-alive connections (where the server allows them).
2. Attacks: fast clients send 100 requests a second for 8 seconds, first with no attack, then
   under each kind of attacker (tests/bench/load.py), 50 and 200 at a time; this stack also
   faces 1,000 of each kind, and 1,000 of all three kinds at once. Meanwhile the benchmark
   counts the app's threads stuck on a client socket (proof that an attack bites), and
   nginx's memory and temporary files.

3. The dyno's ceiling (tests/bench/capacity.py): this stack alone, each run on a fresh stack,
   against 10,000 attackers from one address, a crowd of up to 10,000 distinct addresses,
   and the memory budget of a Standard-1X.

It prints a markdown report and writes it, with a chart, to tests/bench/results.md and
tests/bench/results.png. Everything runs on 127.0.0.1, every attack stops by itself, and
every process it starts is stopped before it exits. About fifteen minutes.

`python -m tests.bench --capacity` runs part 3 alone and only prints its report.
"""

import argparse
import json
from importlib import metadata
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.bench import capacity, load, probes
from tests.bench.servers import WORKERS, all_servers
from tests.stack import REPO

OUTPUT_DIR = Path(__file__).resolve().parent
SMALL_PAGE = "/bench/small/"

ATTACK_SIZES = (50, 200)
STACK_ONLY_ATTACK_SIZE = 1000
SETTLE = 3.0  # after the attackers' ramp-up, before measuring
MEASURE = 8.0
THROUGHPUT_ROUNDS = 3
RECOVERY_TIMEOUT = 30.0
# Attackers stop by themselves after this long, even if nothing stops them.
ATTACK_SECONDS = load.RAMP_UP + SETTLE + MEASURE + load.FAST_TIMEOUT + 2

# The targets this stack must meet (see the README): under attack, fast clients keep this
# success rate and a p99 latency within this factor of their own p99 with no attack.
TARGET_SUCCESS = 0.999
TARGET_P99_FACTOR = 2.0


@dataclass
class Row:
    server: str
    scenario: str
    results: list
    blocked: int = 0  # the app's threads seen stuck on a client socket, at most
    attackers_connected: int = 0
    nginx_kib_before: int = 0  # before the attackers connected
    nginx_kib: int = 0
    temp_kib: int = 0

    @property
    def success(self):
        return load.success_rate(self.results)

    def percentile(self, fraction):
        return load.percentile_ms(self.results, fraction)

    @property
    def per_second(self):
        return sum(r.ok for r in self.results) / MEASURE


@dataclass
class Report:
    rows: list = field(default_factory=list)
    throughput: dict = field(default_factory=dict)  # (server, what) -> requests/s
    capacity_runs: list = field(default_factory=list)
    load_averages: list = field(default_factory=list)


def scenarios(server_name):
    yield "no attack", {}
    sizes = ATTACK_SIZES + ((STACK_ONLY_ATTACK_SIZE,) if server_name == "this stack" else ())
    for size in sizes:
        for kind in load.ATTACKS:
            yield f"{size} {kind}", {kind: size}
    if server_name == "this stack":
        yield f"{STACK_ONLY_ATTACK_SIZE} of each at once", dict.fromkeys(load.ATTACKS, STACK_ONLY_ATTACK_SIZE)


class Sampler(threading.Thread):
    """Samples the server once a second while fast clients run, keeping the highest values."""

    def __init__(self, server, attack, row):
        super().__init__()
        self.server, self.attack, self.row = server, attack, row
        self.done = threading.Event()

    def __enter__(self):
        self.start()

    def __exit__(self, *exc_info):
        self.done.set()
        self.join()

    def run(self):
        while not self.done.wait(1.0):
            row = self.row
            nginx = self.server.nginx_pids()
            row.blocked = max(row.blocked, probes.blocked_on_clients(self.server.app_pids()))
            row.attackers_connected = max(row.attackers_connected, self.attack.connected.value)
            row.nginx_kib = max(row.nginx_kib, probes.memory_kib(nginx))
            if nginx:
                row.temp_kib = max(row.temp_kib, probes.temp_file_kib(nginx, self.server.temp_dir))


def run_scenario(server, name, plan):
    row = Row(server.name, name, [], nginx_kib_before=probes.memory_kib(server.nginx_pids()))
    with load.Attack(plan, server.port, ATTACK_SECONDS) as attack:
        if plan:
            time.sleep(load.RAMP_UP + SETTLE)
        with Sampler(server, attack, row):
            row.results = load.paced_clients(server.port, SMALL_PAGE, MEASURE)
    wait_for_recovery(server)
    return row


def wait_for_recovery(server):
    """After an attack, wait until the server answers again before the next one starts."""
    deadline = time.monotonic() + RECOVERY_TIMEOUT
    while time.monotonic() < deadline and not load.fetch(server.port, SMALL_PAGE).ok:
        time.sleep(0.5)
    time.sleep(1)


def hashed_static_path():
    """The URL of the demo stylesheet under its content-hashed name, as a page links it."""
    manifest = json.loads((REPO / "staticfiles" / "staticfiles.json").read_text())
    return "/static/" + manifest["paths"]["demo/style.css"]


def measure_throughput(servers, report):
    """Requests/s for each server and page: the median of rounds that take turns, so that a
    burst of other work on the machine hurts every server alike, not one of them."""
    pages = {"small page": SMALL_PAGE, "static file": hashed_static_path()}
    rates = {}
    for _ in range(THROUGHPUT_ROUNDS):
        for server in servers:
            for what, path in pages.items():
                rates.setdefault((server.name, what), []).append(load.requests_per_second(server.port, path))
    for (name, what), measured in rates.items():
        report.throughput[name, what] = statistics.median(measured)
        progress(f"{name}: {what}: {statistics.median(measured):.0f} requests/s (rounds: "
                 + ", ".join(f"{rate:.0f}" for rate in measured) + ")")


def attack_server(server, report):
    for name, plan in scenarios(server.name):
        row = run_scenario(server, name, plan)
        report.rows.append(row)
        progress(f"{server.name}: {name}: {cell(row)}, {row.blocked} threads stuck on clients, "
                 f"{row.attackers_connected} attackers connected, nginx {row.nginx_kib} KiB, temp {row.temp_kib} KiB")


def progress(message):
    print(f"bench: {message}", file=sys.stderr, flush=True)


# --- The report -----------------------------------------------------------------------------

def cell(row):
    p99 = row.percentile(0.99)
    latency = f"{row.percentile(0.5):.0f} / {p99:.0f} ms" if p99 < math.inf else "p99 > timeout"
    return f"{row.success:.1%} · {latency}"


def machine_description(report):
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    nginx = shutil.which("nginx", path=f"{os.environ['PATH']}:/usr/sbin")
    nginx_version = subprocess.run([nginx, "-v"], capture_output=True, text=True).stderr.strip()
    versions = ", ".join(f"{name} {metadata.version(name)}" for name in ("gunicorn", "waitress", "Django"))
    loads = " → ".join(f"{one:.2f}" for one in report.load_averages)
    return "\n".join([
        f"- {os.cpu_count()} CPUs ({cpu}), Linux {platform.release()}",
        f"- Load average (1 minute) at the start → end of the run: {loads}",
        f"- {nginx_version}, {versions}, Python {platform.python_version()}",
        f"- Every server runs the same Django project with {WORKERS} workers (waitress: {WORKERS} threads)",
    ])


def markdown_table(first_column, columns, rows):
    """A markdown table: a header row, then one row per (label, cells) pair."""

    def table_row(cells):
        return "|" + "|".join(f" {text} " if text else " " for text in cells) + "|"

    return [
        table_row([first_column, *columns]),
        "| --- |" + " --- |" * len(columns),
        *(table_row([label, *cells]) for label, cells in rows),
    ]


def markdown(report):
    servers = list(dict.fromkeys(row.server for row in report.rows))
    by_key = {(row.server, row.scenario): row for row in report.rows}
    scenario_names = list(dict.fromkeys(row.scenario for row in report.rows))

    def per_server(scenario, describe):
        return [describe(by_key[s, scenario]) if (s, scenario) in by_key else "—" for s in servers]

    def stuck(row):
        return f"{row.blocked} stuck, {row.attackers_connected} connected"

    def nginx_use(row):
        return [f"{row.nginx_kib_before / 1024:.1f} → {row.nginx_kib / 1024:.1f} MiB", f"{row.temp_kib / 1024:.1f} MiB"]

    lines = [
        "## Fast clients under attack",
        "",
        "Success rate (a complete 200 within 5 s) and p50 / p99 latency of fast clients sending "
        "100 small-page requests a second for 8 seconds. Only this stack faces 1,000 attackers "
        "(—): every other server has already failed at 200.",
        "",
        *markdown_table("attack", servers, [(name, per_server(name, cell)) for name in scenario_names]),
        "",
        "## Is the attack real?",
        "",
        "The most threads running Django seen stuck in a socket read or write with a client "
        f"(of {WORKERS} workers; gthread has 5 threads in each), and attackers connected.",
        "",
        *markdown_table("attack", servers, [(name, per_server(name, stuck)) for name in scenario_names[1:]]),
        "",
        "## nginx's memory and temporary files (this stack)",
        "",
        "Resident memory of all nginx processes before the attack and at its peak (memory freed "
        "after an attack stays with the process, so each row starts where the last one peaked), "
        "and the most disk its temporary files held at once.",
        "",
        *markdown_table("attack", ["nginx memory, before → peak", "temporary files"],
                        [(row.scenario, nginx_use(row)) for row in report.rows if row.server == "this stack"]),
        "",
        "## Throughput",
        "",
        f"Requests per second, median of {THROUGHPUT_ROUNDS} rounds taken in turns, with 4 client processes "
        "sending back to back over keep-alive connections (gunicorn sync closes after each response).",
        "",
        *markdown_table("", servers, [(what, [f"{report.throughput[s, what]:.0f}" for s in servers])
                                      for what in ("small page", "static file")]),
    ]
    lines += ["", *capacity.markdown(report.capacity_runs, markdown_table)]
    lines += ["", "## Targets", "", *targets(report, by_key), *capacity.targets(report.capacity_runs),
              "", "## Machine", "", machine_description(report), ""]
    return "\n".join(lines)


def targets(report, by_key):
    stack_rows = [row for row in report.rows if row.server == "this stack" and row.scenario != "no attack"]
    baseline = by_key["this stack", "no attack"].percentile(0.99)
    lines = []
    for row in stack_rows:
        if not row.scenario.startswith(str(ATTACK_SIZES[0])):
            ok = row.success >= TARGET_SUCCESS and row.percentile(0.99) <= TARGET_P99_FACTOR * baseline
            lines.append(f"- {'met' if ok else 'MISSED'}: {row.scenario}: {row.success:.2%} success, p99 "
                         f"{row.percentile(0.99) / baseline:.2f}× the no-attack p99 ({baseline:.1f} ms)")
    for peer in ("gunicorn sync", "gunicorn gthread", "waitress"):
        worst = min((row for row in report.rows if row.server == peer), key=lambda row: row.success)
        lines.append(f"- {peer} at its worst: {worst.scenario}, {cell(worst)}")
    small = report.throughput["this stack", "small page"] / report.throughput["gunicorn sync", "small page"]
    static = report.throughput["this stack", "static file"] / report.throughput["gunicorn sync", "static file"]
    lines.append(f"- {'met' if small >= 0.9 else 'MISSED'}: small page through nginx at {small:.2f}× bare gunicorn's requests/s (target 0.9×)")
    lines.append(f"- {'met' if static >= 5 else 'MISSED'}: static file from nginx at {static:.1f}× whitenoise in gunicorn (target 5×)")
    return lines


def chart(report, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    servers = list(dict.fromkeys(row.server for row in report.rows))
    scenario_names = [name for name in dict.fromkeys(row.scenario for row in report.rows)]
    by_key = {(row.server, row.scenario): row for row in report.rows}
    figure = plt.figure(figsize=(13, 12))
    grid = figure.add_gridspec(3, 2, height_ratios=(1, 1, 1))
    success_axes = figure.add_subplot(grid[0, :])
    latency_axes = figure.add_subplot(grid[1, :], sharex=success_axes)
    width = 0.8 / len(servers)
    for i, server in enumerate(servers):
        xs = [j + i * width for j, scenario in enumerate(scenario_names) if (server, scenario) in by_key]
        rows = [by_key[server, scenario] for scenario in scenario_names if (server, scenario) in by_key]
        success_axes.bar(xs, [100 * row.success for row in rows], width, label=server)
        capped = [min(row.percentile(0.99), load.FAST_TIMEOUT * 1000) for row in rows]
        latency_axes.bar(xs, capped, width, label=server)
    success_axes.set_ylabel("fast clients served (%)")
    success_axes.set_title("Fast clients while slow clients attack (4 workers each, 127.0.0.1)")
    success_axes.legend(ncol=len(servers), loc="lower left")
    latency_axes.set_ylabel("p99 latency (ms, log; top = timeout)")
    latency_axes.set_yscale("log")
    latency_axes.set_xticks([j + 0.4 - width / 2 for j in range(len(scenario_names))])
    latency_axes.set_xticklabels(scenario_names, rotation=30, ha="right")
    success_axes.tick_params(labelbottom=False)
    capacity.chart(figure.add_subplot(grid[2, 0]), figure.add_subplot(grid[2, 1]), report.capacity_runs)
    figure.tight_layout()
    figure.savefig(path, dpi=100)


def capacity_only():
    """Part 3 alone, for working on it: prints its report and leaves results.md alone."""
    runs = capacity.run_all()
    print("\n".join([*capacity.markdown(runs, markdown_table), "", "## Targets", "", *capacity.targets(runs)]))


def main():
    parser = argparse.ArgumentParser(prog="python -m tests.bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--capacity", action="store_true",
                        help="run only the dyno's ceiling (part 3) and print its report, writing no files")
    if parser.parse_args().capacity:
        capacity_only()
        return
    report = Report(load_averages=[os.getloadavg()[0]])
    with tempfile.TemporaryDirectory(prefix="bench-") as runtime_dir:
        os.chmod(runtime_dir, 0o755)  # nginx's workers (the checkout's owner when run as root) enter it
        servers = all_servers(Path(runtime_dir))
        try:
            for server in servers:
                progress(f"starting {server.name}")
                server.start()
            measure_throughput(servers, report)
            for server in servers:
                attack_server(server, report)
        finally:
            for server in servers:
                server.stop()
    report.capacity_runs = capacity.run_all()
    report.load_averages.append(os.getloadavg()[0])
    text = markdown(report)
    print(text)
    (OUTPUT_DIR / "results.md").write_text(text)
    chart(report, OUTPUT_DIR / "results.png")
    progress(f"wrote {OUTPUT_DIR / 'results.md'} and {OUTPUT_DIR / 'results.png'}")


if __name__ == "__main__":
    main()
