"""The dyno's ceiling: what one client, a crowd and a Standard-1X's memory allow.

Three sets of runs against this stack alone, each run on a fresh stack so that one run's
queue, memory and temporary files never spill into the next:

    one abusive address   10,000 attackers of one kind, each kind in its own run, all from
                          203.0.113.66 in X-Forwarded-For (as the router sends it), while fast
                          clients come through the router from addresses of their own; and
                          each again aimed at a second stack, as a control (see CONTROL)
    a crowd               slow readers, then slow uploaders, from distinct addresses, in steps
                          of 1,000 to 10,000: where do fast clients start to fail, and why?
    Standard-1X budget    WEB_CONCURRENCY=2, as Heroku sets it there: the memory (PSS) of the
                          whole web process at rest and under 1,000 of each kind at once,
                          against the dyno's 512 MB

`python -m tests.bench --capacity` runs only these and prints their report.
"""

import contextlib
import math
import os
import re
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.bench import load, probes
from tests.bench.servers import WORKERS, ThisStack

SMALL_PAGE = "/bench/small/"
ABUSIVE_ADDRESS = "203.0.113.66"
ABUSIVE_SIZE = 10_000
CROWD_SIZES = (1_000, 2_000, 5_000, 10_000)
CROWD_KINDS = ("slow readers", "slow uploaders")
BUDGET_WORKERS = 2
BUDGET_SIZE = 1_000
DYNO_MEMORY_MIB = 512  # Standard-1X

SETTLE = 3.0  # after the attackers' ramp-up, before measuring
MEASURE = 8.0
# Attackers stop by themselves after this long, even if nothing stops them.
ATTACK_SECONDS = load.RAMP_UP + SETTLE + MEASURE + load.FAST_TIMEOUT + 2

# The control for each abusive run: the same attack aimed at a second stack on this machine,
# while the fast clients are measured on the first. Here attackers share the stack's two
# cores, as they never would on Heroku; the control shows what that costs the fast clients
# when the stack under test does no work for the attack at all.
CONTROL = ", at another stack"

TARGET_SUCCESS = 0.999
TARGET_P99_FACTOR = 2.0

# What nginx and gunicorn print when a resource runs out, and what to call it in the report.
RAN_OUT_MESSAGES = {
    "(11: Resource temporarily unavailable) while connecting to upstream": "gunicorn's queue (503)",
    "worker_connections are not enough": "nginx's worker_connections",  # when none can be reused
    "Too many open files": "file descriptors",
    "could not allocate node": "the per-client zone",
}


@dataclass
class Run:
    name: str
    workers: int
    results: list = field(default_factory=list)  # the fast clients'
    attackers_connected: int = 0  # the most at once
    attacker_statuses: dict = field(default_factory=dict)
    nginx_kib: int = 0  # resident, at its peak
    nginx_open_files: int = 0
    temp_kib: int = 0  # nginx's temporary files, at their peak
    samples: int = 0
    samples_nginx_on_disk: int = 0  # samples with an nginx process waiting for the disk
    web_pss_kib_at_rest: int = 0  # the whole web process, before the attack
    web_pss_kib: int = 0  # and at its peak
    queue_waiting: int = 0  # gunicorn's, at its peak
    queue_size: int = 0
    gunicorn_cpu: float = 0.0  # CPU cores gunicorn's processes kept busy while measured
    nginx_cpu: float = 0.0  # and nginx's
    ran_out: dict = field(default_factory=dict)  # what RAN_OUT_MESSAGES found: count
    load_average: float = 0.0  # the machine's, 1 minute, when the run started

    @property
    def success(self):
        return load.success_rate(self.results)

    def p99(self):
        return load.percentile_ms(self.results, 0.99)

    def bad_gateways(self):
        return self.attacker_statuses.get(502, 0) + sum(r.status == 502 for r in self.results)

    def fast_statuses(self):
        counts = {}
        for result in self.results:
            key = result.status if result.status is not None else "no answer"
            counts[key] = counts.get(key, 0) + 1
        return counts


class Sampler(threading.Thread):
    """Samples the stack twice a second while fast clients run, keeping the highest values."""

    def __init__(self, server, attack, run):
        super().__init__()
        self.server, self.attack, self.run_ = server, attack, run
        self.done = threading.Event()

    def __enter__(self):
        self.cpu_before = self.cpu_seconds()
        self.started = time.monotonic()
        self.start()

    def __exit__(self, *exc_info):
        self.done.set()
        self.join()
        elapsed = time.monotonic() - self.started
        gunicorn, nginx = (after - before for after, before in zip(self.cpu_seconds(), self.cpu_before))
        self.run_.gunicorn_cpu, self.run_.nginx_cpu = gunicorn / elapsed, nginx / elapsed

    def cpu_seconds(self):
        """CPU time used so far by gunicorn (master and workers) and by nginx."""
        gunicorn = [self.server.pids["app"], *self.server.app_pids()]
        return probes.cpu_seconds(gunicorn), probes.cpu_seconds(self.server.nginx_pids())

    def run(self):
        run = self.run_
        while not self.done.wait(0.5):
            nginx = self.server.nginx_pids()
            run.attackers_connected = max(run.attackers_connected, self.attack.connected.value)
            run.nginx_kib = max(run.nginx_kib, probes.memory_kib(nginx))
            run.nginx_open_files = max(run.nginx_open_files, probes.open_files(nginx))
            run.temp_kib = max(run.temp_kib, probes.temp_file_kib(nginx, self.server.temp_dir))
            run.samples += 1
            run.samples_nginx_on_disk += probes.waiting_on_disk(nginx) > 0
            run.web_pss_kib = max(run.web_pss_kib, probes.pss_kib(self.server.web_process_pids()))
            waiting, run.queue_size = probes.listen_queue(self.server.socket_path)
            run.queue_waiting = max(run.queue_waiting, waiting)


def run_on_fresh_stack(name, plan, addresses, workers=WORKERS, aim_elsewhere=False):
    """Start a stack, attack it with `plan` while fast clients are measured, stop it.

    With aim_elsewhere, the attack goes to a second stack instead, while the fast clients
    are still measured on the first: what the attack costs the machine alone (see CONTROL).
    """
    run = Run(name, workers, load_average=os.getloadavg()[0])
    progress(f"{name}: starting a fresh stack ({workers} workers)")
    with contextlib.ExitStack() as stacks:
        server = stacks.enter_context(fresh_stack(workers))
        target = stacks.enter_context(fresh_stack(workers)) if aim_elsewhere else server
        time.sleep(1)  # let gunicorn's workers finish booting before measuring memory
        run.web_pss_kib_at_rest = probes.pss_kib(server.web_process_pids())
        with load.Attack(plan, target.port, ATTACK_SECONDS, addresses) as attack:
            if plan:
                time.sleep(load.RAMP_UP + SETTLE)
            with Sampler(server, attack, run):
                run.results = load.paced_clients(server.port, SMALL_PAGE, MEASURE, through_router=True)
            run.attacker_statuses = attack.statuses()
        run.ran_out = what_ran_out(server.error_log(), run.attacker_statuses)
    progress(f"{name}: {summary(run)}")
    return run


@contextlib.contextmanager
def fresh_stack(workers):
    with tempfile.TemporaryDirectory(prefix="bench-capacity-") as runtime_dir:
        os.chmod(runtime_dir, 0o755)  # nginx's workers (user nobody when run as root) enter it
        server = ThisStack(Path(runtime_dir), workers=workers)
        try:
            server.start()
            yield server
        finally:
            server.stop()


def what_ran_out(error_log, attacker_statuses):
    """{resource: how many times}, from nginx's error lines and the attackers' answers."""
    found = {}
    for message, resource in RAN_OUT_MESSAGES.items():
        if count := error_log.count(message):
            found[resource] = count
    if count := attacker_statuses.get("closed unanswered"):
        found["nginx's worker_connections (closed unanswered)"] = count
    return found


def ran_out_cell(run):
    found = [f"{resource} ({count:,}×)" for resource, count in run.ran_out.items()]
    if run.samples_nginx_on_disk:
        found.append(f"disk: nginx waited on its temporary files in {run.samples_nginx_on_disk} "
                     f"of {run.samples} samples")
    return ", ".join(found) or "nothing"


def run_all():
    """Every capacity run, in order; returns them as a list of Runs."""
    runs = [run_on_fresh_stack("no attack", {}, None)]
    for kind in load.ATTACKS:
        runs.append(run_on_fresh_stack(f"{ABUSIVE_SIZE} {kind}, one address", {kind: ABUSIVE_SIZE}, ABUSIVE_ADDRESS))
        runs.append(run_on_fresh_stack(f"{ABUSIVE_SIZE} {kind}, one address{CONTROL}", {kind: ABUSIVE_SIZE},
                                       ABUSIVE_ADDRESS, aim_elsewhere=True))
    for kind in CROWD_KINDS:
        for size in CROWD_SIZES:
            runs.append(run_on_fresh_stack(f"crowd of {size} {kind}", {kind: size}, "crowd"))
    runs.append(run_on_fresh_stack(f"Standard-1X under {BUDGET_SIZE:,} of each at once",
                                   dict.fromkeys(load.ATTACKS, BUDGET_SIZE), "crowd", workers=BUDGET_WORKERS))
    return runs


def progress(message):
    print(f"bench: capacity: {message}", file=sys.stderr, flush=True)


# --- The report -----------------------------------------------------------------------------

def fast_cell(run):
    p99 = run.p99()
    latency = f"p99 {p99:.0f} ms" if p99 < math.inf else "p99 > timeout"
    return f"{run.success:.1%} · {latency}"


def statuses_cell(statuses):
    return ", ".join(f"{status}: {count:,}" for status, count in statuses.items() if count) or "none"


def summary(run):
    return (f"fast {fast_cell(run)}, answers to attackers {statuses_cell(run.attacker_statuses)}, "
            f"{run.attackers_connected} connected, nginx {run.nginx_kib / 1024:.0f} MiB and "
            f"{run.nginx_open_files} files, temp {run.temp_kib / 1024:.0f} MiB, queue {run.queue_waiting}/{run.queue_size}, "
            f"CPU gunicorn {run.gunicorn_cpu:.2f} nginx {run.nginx_cpu:.2f}, web PSS {run.web_pss_kib / 1024:.0f} MiB, "
            f"ran out: {ran_out_cell(run)}, load {run.load_average:.2f}")


def controls_by_name(runs):
    """Each control run (see CONTROL), by the name of the abusive run it is the control of."""
    return {run.name.removesuffix(CONTROL): run for run in runs if run.name.endswith(CONTROL)}


def markdown(runs, markdown_table):
    """The capacity sections of results.md; `markdown_table` is __main__'s table helper."""
    baseline = runs[0]
    abusive = [run for run in runs if run.name.endswith("one address")]
    controls = controls_by_name(runs)
    crowd = [run for run in runs if run.name.startswith("crowd")]
    budget = runs[-1]

    def abusive_row(run):
        control = controls[run.name]
        return run.name.removesuffix(", one address"), [
            fast_cell(run), f"{run.p99() / baseline.p99():.2f}×", f"{run.attackers_connected:,}",
            statuses_cell(run.attacker_statuses), f"{fast_cell(control)} ({control.p99() / baseline.p99():.2f}×)",
            f"{run.load_average:.2f}"]

    def crowd_row(run):
        return run.name.removeprefix("crowd of "), [
            fast_cell(run), statuses_cell(run.fast_statuses()), f"{run.nginx_kib / 1024:.0f} MiB",
            f"{run.temp_kib / 1024:.0f} MiB", f"{run.nginx_open_files:,}", f"{run.queue_waiting:,} / {run.queue_size:,}",
            f"{run.gunicorn_cpu:.2f} / {run.nginx_cpu:.2f}", statuses_cell(run.attacker_statuses), f"{run.bad_gateways():,}",
            ran_out_cell(run), f"{run.load_average:.2f}"]

    return [
        "## The dyno's ceiling (this stack alone)",
        "",
        f"Each run on a fresh stack with {WORKERS} gunicorn workers unless noted. Fast clients send 100 "
        f"small-page requests a second for {MEASURE:.0f} seconds through the router (each with an address of its "
        f"own in X-Forwarded-For). No attack: {fast_cell(baseline)} (load average {baseline.load_average:.2f}).",
        "",
        "### One abusive address",
        "",
        f"{ABUSIVE_SIZE:,} attackers of one kind, all from {ABUSIVE_ADDRESS}. An attacker tries again "
        "as soon as it is refused, so the refused ones become a flood of requests, as fast as "
        "the attackers' process can send them. The control is the same attack aimed at a second "
        "stack on this machine while the fast clients are measured on the first: what the attack "
        "costs them through the machine alone, with no work for the stack they use.",
        "",
        *markdown_table("attack", ["fast clients", "p99 vs no attack", "attackers connected",
                                   "answers to attackers", "control: fast clients (p99 vs no attack)",
                                   "load average"], map(abusive_row, abusive)),
        "",
        "### A crowd of distinct addresses",
        "",
        "Every attacker from an address of its own (198.18.0.0/15), so the per-client limit never "
        "applies. Answers to fast clients and attackers by status; \"no answer\" is a fast "
        f"request that got nothing within {load.FAST_TIMEOUT:.0f} s. The queue is gunicorn's: the most "
        "connections seen waiting / its size. CPU: the cores gunicorn's and nginx's processes kept "
        "busy (the machine has " + str(os.cpu_count()) + ", shared with the attackers and the fast clients). "
        "What ran out: from nginx's error lines, the connections it closed unanswered, and the "
        "samples (two a second) in which an nginx process waited for the disk.",
        "",
        *markdown_table("crowd", ["fast clients", "answers to fast clients", "nginx memory",
                                  "nginx temporary files", "nginx open files", "gunicorn queue", "CPU: gunicorn / nginx",
                                  "answers to attackers", "502s", "what ran out", "load average"],
                        map(crowd_row, crowd)),
        "",
        *crowd_conclusions(crowd),
        "",
        "### Standard-1X budget",
        "",
        f"WEB_CONCURRENCY={BUDGET_WORKERS}, as Heroku sets it on a Standard-1X. Proportional set size "
        "(shared pages divided among the processes sharing them) of bin/start-nginx, nginx and "
        f"gunicorn with all their workers, against the dyno's {DYNO_MEMORY_MIB} MB.",
        "",
        *markdown_table("", ["web process (PSS)", f"of {DYNO_MEMORY_MIB} MB"], [
            ("at rest", [f"{budget.web_pss_kib_at_rest / 1024:.0f} MiB",
                         f"{budget.web_pss_kib_at_rest / 1024 / DYNO_MEMORY_MIB:.0%}"]),
            (f"under {BUDGET_SIZE:,} of each kind at once", [
                f"{budget.web_pss_kib / 1024:.0f} MiB", f"{budget.web_pss_kib / 1024 / DYNO_MEMORY_MIB:.0%}"]),
        ]),
        "",
        f"Fast clients meanwhile: {fast_cell(budget)}; attackers connected: {budget.attackers_connected:,}; "
        f"load average {budget.load_average:.2f}.",
    ]


def crowd_conclusions(crowd):
    lines = []
    for kind in CROWD_KINDS:
        steps = [run for run in crowd if run.name.endswith(kind)]
        failing = next((run for run in steps if run.success < TARGET_SUCCESS), None)
        if failing is None:
            lines.append(f"- {kind}: fast clients kept ≥ {TARGET_SUCCESS:.1%} at every step.")
        else:
            lines.append(f"- {kind}: the first step below {TARGET_SUCCESS:.1%} is {failing.name.removeprefix('crowd of ')} "
                         f"({failing.success:.2%}); there: {ran_out_cell(failing)}, CPU gunicorn "
                         f"{failing.gunicorn_cpu:.2f} and nginx {failing.nginx_cpu:.2f} cores, queue {failing.queue_waiting:,} / {failing.queue_size:,}.")
    return lines


def targets(runs):
    """Lines for the report's Targets section."""
    baseline = runs[0].p99()
    lines = []
    controls = controls_by_name(runs)
    for run in runs:
        if run.name.endswith("one address"):
            ok = run.success >= TARGET_SUCCESS and run.p99() <= TARGET_P99_FACTOR * baseline
            lines.append(f"- {'met' if ok else 'MISSED'}: {run.name}: {run.success:.2%} success, p99 "
                         f"{run.p99() / baseline:.2f}× the no-attack p99 ({baseline:.1f} ms); "
                         f"aimed at another stack: {controls[run.name].p99() / baseline:.2f}×")
    crowd = [run for run in runs if run.name.startswith("crowd") or run is runs[-1]]
    gateways = sum(run.bad_gateways() for run in crowd)
    refused_otherwise = sum(count for run in crowd for answer, count in run.attacker_statuses.items()
                            if answer not in (200, 429, 503))
    refused_otherwise += sum(r.status not in (200, 429, 503) for run in crowd for r in run.results)
    lines.append(f"- {'met' if gateways == 0 else 'MISSED'}: 502s in the crowd runs: {gateways:,}")
    lines.append(f"- {'met' if refused_otherwise == 0 else 'MISSED'}: refusals other than 429 and 503 "
                 f"(another status, a connection closed unanswered, no answer in {load.FAST_TIMEOUT:.0f} s) "
                 f"in the crowd runs: {refused_otherwise:,}")
    budget = runs[-1]
    lines.append(f"- {'met' if budget.web_pss_kib / 1024 < DYNO_MEMORY_MIB else 'MISSED'}: Standard-1X budget: "
                 f"{budget.web_pss_kib / 1024:.0f} MiB under {BUDGET_SIZE:,} of each kind, of {DYNO_MEMORY_MIB} MB")
    return lines


def chart(axes_abusive, axes_crowd, runs):
    """Fast clients' success: per abusive run (bars), and along the crowd's steps (lines)."""
    abusive = [run for run in runs if run.name.endswith("one address")]
    axes_abusive.bar([run.name.removesuffix(", one address").removeprefix(f"{ABUSIVE_SIZE} ") for run in abusive],
                     [100 * run.success for run in abusive], color="tab:blue")
    axes_abusive.set_ylim(0, 105)
    axes_abusive.set_ylabel("fast clients served (%)")
    axes_abusive.set_title(f"{ABUSIVE_SIZE:,} attackers from one address")
    for kind in CROWD_KINDS:
        steps = [run for run in runs if run.name.startswith("crowd") and run.name.endswith(kind)]
        axes_crowd.plot([int(re.search(r"\d+", run.name).group()) for run in steps],
                        [100 * run.success for run in steps], marker="o", label=kind)
    axes_crowd.axhline(100 * TARGET_SUCCESS, color="grey", linestyle=":", label="target 99.9 %")
    axes_crowd.set_xscale("log")
    axes_crowd.set_xticks(CROWD_SIZES, [f"{size:,}" for size in CROWD_SIZES])
    axes_crowd.set_ylim(0, 105)
    axes_crowd.set_xlabel("attackers, each from its own address")
    axes_crowd.set_title("A crowd of distinct addresses")
    axes_crowd.legend(loc="lower left")
