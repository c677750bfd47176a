#!/usr/bin/env python3
"""Runs every scenario of bench/run and writes bench/out/results.json (bench/report.py turns
that into bench/REPORT.md).

Everything runs on this machine, against loopback addresses only: the limits, a bare poem
hello-world, Latchkey on the embedded store and on Redis (its own redis-server on a free port),
one to three Latchkey replicas sharing Redis, the Flask + Flask-JWT-Extended peer (PEM keys and
parsed keys) and the node oidc-provider peer. Every load is bounded in time and in requests;
every process started here is stopped here, by its own pid.

Standard library only: bench/run prepares the peers' environments and the release binaries.
Knobs (environment): BENCH_DURATION (measured seconds per scenario, default 5), BENCH_WARMUP
(default 1), BENCH_CONCURRENCY (default 32), BENCH_ONLY (comma list of phases to run),
BENCH_PROFILE (0 turns profiling off).
"""

import atexit
import base64
import json
import math
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
OUT = BENCH / "out"
RAW = OUT / "raw"
LOGS = OUT / "logs"
BIN = Path(os.environ.get("BENCH_BIN", ROOT / "target" / "release"))
VENV = BENCH / ".venv"
# The service binary: the work tree's, or a commit's built by bench/run (BENCH_REV).
LATCHKEY = Path(os.environ.get("BENCH_LATCHKEY", BIN / "latchkey"))

DURATION = float(os.environ.get("BENCH_DURATION", "5"))
WARMUP = float(os.environ.get("BENCH_WARMUP", "1"))
CONC = int(os.environ.get("BENCH_CONCURRENCY", "32"))
OBSERVER_CONC = 8
RSS_CONC = 256
NPROC = os.cpu_count() or 1
PROFILE = os.environ.get("BENCH_PROFILE", "1") != "0"
ONLY = {p.strip() for p in os.environ.get("BENCH_ONLY", "").split(",") if p.strip()}
PASSWORD = "correct horse battery staple"
POOL_PASSWORD = "pool password for refresh tokens"
# Hard ceiling on pre-issued refresh tokens per pool.
POOL_MAX = 60000

results = {"started": time.strftime("%Y-%m-%d %H:%M:%S %z"), "settings": {
    "duration_s": DURATION, "warmup_s": WARMUP, "concurrency": CONC,
    "observer_concurrency": OBSERVER_CONC, "rss_concurrency": RSS_CONC, "nproc": NPROC,
}, "commands": [], "phases": {}}


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def wanted(phase):
    return not ONLY or any(phase.startswith(p) for p in ONLY)


# ---------------------------------------------------------------------------------------------
# Processes

class Proc:
    """A child process, stopped by its own pid (and its process group, which is its own)."""

    live = []

    def __init__(self, name, argv, env=None, cwd=None):
        self.name = name
        self.log_path = LOGS / f"{name}.log"
        self.log_file = open(self.log_path, "wb")
        full_env = dict(os.environ)
        full_env.update(env or {})
        record_command(argv, env, cwd)
        self.popen = subprocess.Popen(
            [str(a) for a in argv], env=full_env, cwd=cwd, stdout=self.log_file,
            stderr=subprocess.STDOUT, start_new_session=True,
        )
        Proc.live.append(self)

    @property
    def pid(self):
        return self.popen.pid

    def alive(self):
        return self.popen.poll() is None

    def stop(self, timeout=10):
        if self.alive():
            try:
                os.killpg(self.popen.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(self.popen.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.popen.wait(timeout=5)
        self.log_file.close()
        if self in Proc.live:
            Proc.live.remove(self)


def stop_all():
    for proc in list(Proc.live):
        proc.stop(timeout=5)


atexit.register(stop_all)
signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))


def record_command(argv, env=None, cwd=None):
    shown_env = " ".join(f"{k}={v}" for k, v in (env or {}).items())
    text = " ".join(str(a) for a in argv)
    results["commands"].append((shown_env + " " if shown_env else "") + text)


def run(argv, env=None, input_text=None, timeout=120, check=True):
    full_env = dict(os.environ)
    full_env.update(env or {})
    record_command(argv, env)
    done = subprocess.run([str(a) for a in argv], env=full_env, input=input_text, text=True,
                          capture_output=True, timeout=timeout)
    if check and done.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    return done


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url, proc=None, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and not proc.alive():
            raise RuntimeError(f"{proc.name} exited; see {proc.log_path}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except Exception:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout} s")


def http(url, data=None, headers=None):
    req = urllib.request.Request(url, data=data.encode() if data else None, headers=headers or {})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


def machine_busy():
    """Busy and total jiffies of the whole machine (/proc/stat)."""
    fields = [int(x) for x in open("/proc/stat").readline().split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


# ---------------------------------------------------------------------------------------------
# Load

def load(label, urls, *, method="GET", headers=(), body=None, vars_file=None, conc=None,
         duration=None, warmup=None, max_requests=None, capture=None, capture_out=None,
         pids=(), background=False, timeout=30):
    conc = conc or CONC
    duration = DURATION if duration is None else duration
    warmup = WARMUP if warmup is None else warmup
    out = RAW / f"{label}.json"
    argv = [BIN / "load", "--label", label, "--method", method, "-c", conc,
            "--duration", duration, "--warmup", warmup, "--timeout", timeout, "--out", out]
    for url in ([urls] if isinstance(urls, str) else urls):
        argv += ["--url", url]
    for h in headers:
        argv += ["-H", h]
    if body is not None:
        argv += ["--body", body]
    if vars_file:
        argv += ["--vars", vars_file]
    if max_requests:
        argv += ["--max-requests", max_requests]
    if capture:
        argv += ["--capture", capture, "--capture-out", capture_out]
    for pid in pids:
        argv += ["--pid", pid]
    record_command(argv)
    argv = [str(a) for a in argv]
    if background:
        return subprocess.Popen(argv, stderr=sys.stderr)
    busy0, total0 = machine_busy()
    times0 = [process_times(pid) for pid in pids]
    limit = warmup + duration + timeout + 30
    subprocess.run(argv, check=True, timeout=limit)
    busy1, total1 = machine_busy()
    times1 = [process_times(pid) for pid in pids]
    summary = json.loads(out.read_text())
    summary["machine_busy_cores"] = NPROC * (busy1 - busy0) / max(1, total1 - total0)
    user = sum(b[0] - a[0] for a, b in zip(times0, times1) if a and b)
    system = sum(b[1] - a[1] for a, b in zip(times0, times1) if a and b)
    if user + system > 0:
        # Over warm-up and window together: the share, applied to the window's CPU per request.
        summary["server"]["kernel_share"] = system / (user + system)
    out.write_text(json.dumps(summary, indent=2))
    return summary


def basic(client_id, secret):
    return "Authorization: Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


FORM = "Content-Type: application/x-www-form-urlencoded"


def issue_pool(label, url, body, count, headers=(FORM,)):
    """Pre-issues `count` refresh tokens with password grants; returns the file of tokens."""
    path = OUT / f"pool-{label}.txt"
    load(f"pool-{label}", url, method="POST", headers=headers, body=body, conc=8,
         duration=600, warmup=0, max_requests=count, capture="refresh_token",
         capture_out=path, timeout=60)
    got = sum(1 for line in path.read_text().splitlines() if line)
    log(f"  pool {label}: {got} refresh tokens")
    return path


def pool_size(rate_hint):
    """Enough refresh tokens for the scenario at the expected rate, with margin."""
    want = int(rate_hint * (DURATION + WARMUP) * 1.5) + 2 * CONC
    return max(4 * CONC, min(POOL_MAX, want))


# ---------------------------------------------------------------------------------------------
# Redis

class Redis:
    def __init__(self, name):
        self.port = free_port()
        data = OUT / name
        data.mkdir(parents=True, exist_ok=True)
        self.proc = Proc(name, ["redis-server", "--port", self.port, "--bind", "127.0.0.1",
                                "--save", "", "--appendonly", "no", "--dir", data,
                                "--daemonize", "no", "--protected-mode", "yes"])
        deadline = time.time() + 20
        while time.time() < deadline:
            try:
                if self.command("PING") == "PONG":
                    break
            except OSError:
                time.sleep(0.1)
        else:
            raise RuntimeError("redis-server did not start")
        self.url = f"redis://127.0.0.1:{self.port}"

    def command(self, *args):
        """One command over RESP; returns the decoded reply (bulk or simple string, integer)."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
            payload = f"*{len(args)}\r\n" + "".join(f"${len(str(a).encode())}\r\n{a}\r\n" for a in args)
            s.sendall(payload.encode())
            buf = b""
            while b"\r\n" not in buf:
                chunk = s.recv(65536)
                if not chunk:
                    break
                buf += chunk
            head, _, rest = buf.partition(b"\r\n")
            kind, value = head[:1], head[1:].decode()
            if kind in (b"+", b":"):
                return value
            if kind == b"-":
                raise RuntimeError(value)
            if kind == b"$":
                size = int(value)
                if size < 0:
                    return None
                while len(rest) < size + 2:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    rest += chunk
                return rest[:size].decode()
            raise RuntimeError(f"unexpected reply {head!r}")

    def info(self, section):
        text = self.command("INFO", section)
        out = {}
        for line in text.splitlines():
            if ":" in line and not line.startswith("#"):
                k, v = line.split(":", 1)
                out[k] = v
        return out

    def snapshot(self):
        stats = {}
        for key, value in self.info("commandstats").items():
            fields = dict(kv.split("=") for kv in value.split(","))
            stats[key.removeprefix("cmdstat_")] = (int(fields["calls"]), int(fields["usec"]))
        cpu = self.info("cpu")
        return stats, float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])

    @staticmethod
    def delta(before, after, requests):
        (s0, c0), (s1, c1) = before, after
        per = {}
        for cmd, (calls, usec) in s1.items():
            calls0, usec0 = s0.get(cmd, (0, 0))
            if calls - calls0 > 0:
                per[cmd] = {"calls": calls - calls0, "per_request": (calls - calls0) / max(1, requests),
                            "usec": usec - usec0}
        return {"commands": per,
                "calls_per_request": sum(v["per_request"] for v in per.values()),
                "redis_cpu_s": c1 - c0,
                "redis_cpu_us_per_request": (c1 - c0) * 1e6 / max(1, requests)}


# ---------------------------------------------------------------------------------------------
# Latchkey

class Latchkey:
    """One store's worth of Latchkey: its directories, clients and users, and its replicas."""

    def __init__(self, name, redis=None):
        self.name = name
        self.home = OUT / name
        shutil.rmtree(self.home, ignore_errors=True)
        (self.home / "data").mkdir(parents=True)
        self.redis = redis
        self.replicas = []
        self.issuer = None
        self.env = {
            "LATCHKEY_KEYS__DIR": str(self.home / "keys"),
            "LATCHKEY_LOG__FORMAT": "json",
        }
        if redis:
            self.env.update({"LATCHKEY_STORE__BACKEND": "redis", "LATCHKEY_STORE__URL": redis.url,
                             "LATCHKEY_STORE__PREFIX": f"{name}:"})
        else:
            self.env.update({"LATCHKEY_STORE__BACKEND": "embedded",
                             "LATCHKEY_STORE__PATH": str(self.home / "data")})

    def cli(self, *args, env=None, stdin=None):
        return run([LATCHKEY, *args], env={**self.env, **(env or {})}, input_text=stdin)

    def provision(self):
        self.cli("keys", "generate")
        svc = json.loads(self.cli("clients", "add", "svc", "--scope", "read").stdout)
        self.secret = svc["client_secret"]
        self.cli("clients", "add", "web", "--public", "--grant", "password", "--grant",
                 "refresh_token", "--scope", "read", "--scope", "write")
        # A client with a key pair (private_key_jwt): each token costs one more RSA verification.
        self.client_key = OUT / f"{self.name}-client-key.der"
        jwks = OUT / f"{self.name}-client-jwks.json"
        run([BIN / "assertions", "keygen", "--key", self.client_key, "--jwks", jwks])
        self.cli("clients", "add", "svc-key", "--jwks", jwks, "--scope", "read")
        # A service that exchanges users' tokens (RFC 8693): one RSA verification of the subject
        # token and one signature per exchanged token.
        exchanger = json.loads(self.cli("clients", "add", "orders", "--grant", "token-exchange",
                                        "--scope", "read").stdout)
        self.exchange_secret = exchanger["client_secret"]
        self.cli("users", "add", "alice", "--password-stdin", "--role", "user", stdin=PASSWORD + "\n")
        # The pool user's hash is cheap (its parameters travel in the hash), so pre-issuing
        # thousands of refresh tokens does not take minutes of argon2.
        self.cli("users", "add", "pool", "--password-stdin", "--role", "user",
                 stdin=POOL_PASSWORD + "\n",
                 env={"LATCHKEY_PASSWORDS__MEMORY_KIB": "8", "LATCHKEY_PASSWORDS__ITERATIONS": "1"})

    def start(self, count=1, wrapper=()):
        """Starts `count` replicas (under `wrapper`, a command such as valgrind's, if given)."""
        ports = [free_port() for _ in range(count)]
        if self.issuer is None:
            self.issuer = f"http://127.0.0.1:{ports[0]}"
        for i, port in enumerate(ports):
            proc = Proc(f"{self.name}-{len(self.replicas) + 1}", [*wrapper, LATCHKEY, "serve"],
                        env={**self.env, "LATCHKEY_SERVER__BIND": f"127.0.0.1:{port}",
                             "LATCHKEY_ISSUER": self.issuer})
            proc.url = f"http://127.0.0.1:{port}"
            self.replicas.append(proc)
        for proc in self.replicas:
            wait_http(proc.url + "/healthz", proc, timeout=120 if wrapper else 60)
        return self.replicas

    def stop(self):
        for proc in self.replicas:
            proc.stop()
        self.replicas = []

    @property
    def urls(self):
        return [p.url for p in self.replicas]

    @property
    def pids(self):
        return [p.pid for p in self.replicas]

    def user_token(self):
        answer = http(self.urls[0] + "/oauth/token",
                      f"grant_type=password&username=alice&password={PASSWORD.replace(' ', '+')}&client_id=web",
                      {"Content-Type": "application/x-www-form-urlencoded"})
        return answer["access_token"]


PASSWORD_FORM = f"grant_type=password&username=alice&password={PASSWORD.replace(' ', '+')}&client_id=web"
POOL_FORM = f"grant_type=password&username=pool&password={POOL_PASSWORD.replace(' ', '+')}&client_id=web"


def latchkey_scenarios(lk, tag, redis=None):
    """The endpoint scenarios on a running single replica; returns {scenario: summary}."""
    urls, pids = lk.urls, lk.pids
    figures = {}

    def measure(scenario, *args, **kwargs):
        before = redis.snapshot() if redis else None
        summary = load(f"{tag}-{scenario}", *args, pids=pids, **kwargs)
        if redis:
            summary["redis"] = Redis.delta(before, redis.snapshot(), summary["ok_all"])
        figures[scenario] = summary
        return summary

    def signed_around(scenario, *args, **kwargs):
        """A grant scenario with the raw signature measured just before and just after it."""
        before = raw_sign_cpu_us(f"{tag}-{scenario}-before")
        summary = measure(scenario, *args, **kwargs)
        after = raw_sign_cpu_us(f"{tag}-{scenario}-after")
        summary["raw_sign_around_us"] = [before, after]
        return summary

    token_urls = [u + "/oauth/token" for u in urls]
    cc = signed_around("client_credentials", token_urls, method="POST",
                       headers=[FORM, basic("svc", lk.secret)], body="grant_type=client_credentials")
    assertions = OUT / f"assertions-{tag}.txt"
    run([BIN / "assertions", "sign", "--key", lk.client_key, "--client", "svc-key",
         "--audience", lk.issuer, "--count", pool_size(cc["rps"]), "--out", assertions])
    signed_around("client_credentials_private_key_jwt", token_urls, method="POST", headers=[FORM],
                  vars_file=assertions, body="grant_type=client_credentials&client_assertion_type="
                  "urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer"
                  "&client_assertion={var}")
    measure("password", token_urls, method="POST", headers=[FORM], body=PASSWORD_FORM)
    pool = issue_pool(tag, token_urls, POOL_FORM, pool_size(cc["rps"] / 2))
    signed_around("refresh", token_urls, method="POST", headers=[FORM], vars_file=pool,
                  body="grant_type=refresh_token&client_id=web&refresh_token={var}")
    measure("jwks", [u + "/.well-known/jwks.json" for u in urls])
    access = lk.user_token()
    # Every request exchanges the same live user token: no state changes, so the figure is the
    # exchange itself (verification, the revocation checks, one signature).
    signed_around("token_exchange", token_urls, method="POST",
                  headers=[FORM, basic("orders", lk.exchange_secret)],
                  body="grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange"
                  "&subject_token_type=urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Aaccess_token"
                  f"&subject_token={access}")
    measure("introspection", [u + "/oauth/introspect" for u in urls], method="POST",
            headers=[FORM, basic("svc", lk.secret)], body=f"token={access}")
    measure("userinfo", [u + "/userinfo" for u in urls], headers=[f"Authorization: Bearer {access}"])
    figures["jwks_during_password_flood"] = flood_scenario(lk, tag, redis)
    return figures


def flood_scenario(lk, tag, redis):
    """JWKS on a few connections while a password-grant flood saturates the argon2 pool."""
    urls = lk.urls
    flood = load(f"{tag}-flood", [u + "/oauth/token" for u in urls], method="POST", headers=[FORM],
                 body=PASSWORD_FORM, duration=DURATION + 1, warmup=WARMUP, background=True)
    try:
        time.sleep(0.5)
        summary = load(f"{tag}-jwks_during_password_flood", [u + "/.well-known/jwks.json" for u in urls],
                       conc=OBSERVER_CONC, pids=lk.pids)
    finally:
        flood.wait(timeout=DURATION + WARMUP + 60)
    summary["flood"] = json.loads((RAW / f"{tag}-flood.json").read_text())
    return summary


def phase_latchkey(store, redis=None):
    tag = f"latchkey-{store}"
    lk = Latchkey(tag, redis)
    lk.provision()
    lk.start(1)
    log(f"{tag}: serving on {lk.urls[0]}")
    phase = {"scenarios": latchkey_scenarios(lk, tag, redis)}
    lk.stop()
    # What-if: the same flood with hashing limited to one core fewer than the machine has, so
    # the async runtime always has a core (LATCHKEY_PASSWORDS__MAX_CONCURRENT).
    if NPROC > 1:
        lk.env["LATCHKEY_PASSWORDS__MAX_CONCURRENT"] = str(NPROC - 1)
        lk.start(1)
        phase["flood_hashing_on_fewer_cores"] = flood_scenario(lk, f"{tag}-fewer", redis=None)
        phase["flood_hashing_on_fewer_cores"]["max_concurrent"] = NPROC - 1
        lk.stop()
        del lk.env["LATCHKEY_PASSWORDS__MAX_CONCURRENT"]
    # Resident memory under 256 connections, on a fresh process that has hashed no password
    # with the real parameters (the design's budget excludes argon2 buffers).
    lk.start(1)
    phase["rss_256"] = load(f"{tag}-rss256", lk.urls[0] + "/oauth/token", method="POST",
                            headers=[FORM, basic("svc", lk.secret)],
                            body="grant_type=client_credentials", conc=RSS_CONC, pids=lk.pids)
    if PROFILE and shutil.which("perf"):
        phase["profile"] = profile_latchkey(lk, tag)
    lk.stop()
    return phase


def mixed_round(lk, tag, round_no):
    """One round of the design's mixed workload on a running replica: a password flood, then
    client_credentials on 256 connections, then JWKS; returns the round's figures."""
    url = lk.urls[0]
    loads = {
        "password": load(f"{tag}-r{round_no}-password", url + "/oauth/token", method="POST",
                         headers=[FORM], body=PASSWORD_FORM, pids=lk.pids),
        "client_credentials": load(f"{tag}-r{round_no}-cc", url + "/oauth/token", method="POST",
                                   headers=[FORM, basic("svc", lk.secret)],
                                   body="grant_type=client_credentials", conc=RSS_CONC, pids=lk.pids),
        "jwks": load(f"{tag}-r{round_no}-jwks", url + "/.well-known/jwks.json", pids=lk.pids),
    }
    status = process_memory(lk.pids[0])
    return {
        "largest_mappings_kib": largest_mappings(lk.pids[0]),
        "peak_rss_kib": max(x["server"]["peak_rss_kib"] for x in loads.values()),
        "rss_after_kib": status.get("VmRSS"),
        "hwm_kib": status.get("VmHWM"),
        "anon_kib": status.get("RssAnon"),
        "file_kib": status.get("RssFile"),
        "threads": status.get("Threads"),
        "rates": {name: x["rps"] for name, x in loads.items()},
        "errors": sum(x["non_2xx"] + x["errors"] for x in loads.values()),
    }


def process_times(pid):
    """(utime, stime) of a process and all its threads, in clock ticks; None once it is gone."""
    try:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[11]), int(fields[12])


def largest_mappings(pid, count=8):
    """The resident KiB of a process's largest mappings, named by what they map (anonymous
    regions as [anon]), from /proc/PID/smaps: where the memory is."""
    sizes, name = [], None
    for line in open(f"/proc/{pid}/smaps"):
        fields = line.split()
        if "-" in fields[0] and len(fields) >= 5:
            name = fields[5] if len(fields) > 5 else "[anon]"
        elif fields[0] == "Rss:":
            sizes.append([name, int(fields[1])])
    return sorted(sizes, key=lambda x: -x[1])[:count]


def process_memory(pid):
    """VmRSS, VmHWM (KiB), RssAnon, RssFile and the thread count of a process, from
    /proc/PID/status."""
    fields = {}
    for line in open(f"/proc/{pid}/status"):
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM", "RssAnon", "RssFile", "Threads"):
            fields[name] = int(value.split()[0])
    return fields


def phase_memory(store, redis=None, rounds=3):
    """Design §7's memory budget: the mixed workload repeated on one process, peak resident
    memory per round (argon2 blocks included)."""
    tag = f"memory-{store}"
    lk = Latchkey(tag, redis)
    lk.provision()
    lk.start(1)
    try:
        figures = [mixed_round(lk, tag, n + 1) for n in range(rounds)]
    finally:
        lk.stop()
    for n, r in enumerate(figures, 1):
        log(f"  {tag} round {n}: peak {r['peak_rss_kib'] / 1024:.1f} MiB, after "
            f"{(r['rss_after_kib'] or 0) / 1024:.1f} MiB ({(r['anon_kib'] or 0) / 1024:.1f} anonymous, "
            f"{(r['file_kib'] or 0) / 1024:.1f} file), {r['threads']} threads; "
            f"largest {r['largest_mappings_kib']}")
    return {"rounds": figures, "connections": RSS_CONC}


def phase_instructions(requests=300, warmup=50):
    """Instructions per token under callgrind (see bench/instructions.py), embedded store."""
    import instructions
    tag = "instructions-embedded"
    lk = Latchkey(tag)
    lk.provision()
    token = lambda: lk.urls[0] + "/oauth/token"

    def start(wrapper):
        lk.start(1, wrapper=wrapper)
        return lk.pids[0]

    def driver(name, body, headers, pools=False):
        """Sends n requests per call; for refresh, each call spends its own pool of tokens, all
        issued on the first call (the warm-up), so none is issued while counting."""
        files = []

        def drive(n):
            if pools and not files:
                files.extend(issue_pool(f"{tag}-{count}", token(), POOL_FORM, count + 8)
                             for count in (warmup, requests))
            summary = load(f"{tag}-{name}-{n}", token(), method="POST", headers=headers, body=body,
                           vars_file=files.pop(0) if pools else None, conc=4, duration=600,
                           warmup=0, max_requests=n, timeout=60)
            return summary["ok_all"] if summary["non_2xx"] == 0 else 0
        return drive

    scenarios = {
        "client_credentials": (1, driver("cc", "grant_type=client_credentials",
                                         [FORM, basic("svc", lk.secret)])),
        "refresh": (2, driver("refresh", "grant_type=refresh_token&client_id=web&refresh_token={var}",
                              [FORM], pools=True)),
    }
    figures = {}
    for name, (signatures, drive) in scenarios.items():
        prefix = OUT / f"callgrind-{name}.out"
        for old in OUT.glob(f"callgrind-{name}.out*"):
            old.unlink()
        try:
            figures[name] = instructions.measure(start, drive, requests, warmup, signatures, prefix)
        finally:
            lk.stop()
        log(f"  {tag} {name}: {figures[name].get('instructions_per_request', 0) / 1e6:.2f} M "
            f"instructions per token, {figures[name].get('ratio_to_one_signature') or 0:.3f}× "
            f"its signatures")
    return figures


def profile_latchkey(lk, tag):
    """perf samples (cpu-clock) of the server under client_credentials and refresh."""
    profiles = {}
    token = lk.urls[0] + "/oauth/token"
    runs = {
        "client_credentials": dict(headers=[FORM, basic("svc", lk.secret)],
                                   body="grant_type=client_credentials"),
        "refresh": None,
        "jwks": dict(method="GET", path="/.well-known/jwks.json"),
        "password": dict(headers=[FORM], body=PASSWORD_FORM),
    }
    for scenario, spec in runs.items():
        if spec is None:
            pool = issue_pool(f"{tag}-profile", token, POOL_FORM, pool_size(800))
            spec = dict(headers=[FORM], vars_file=pool,
                        body="grant_type=refresh_token&client_id=web&refresh_token={var}")
        data = OUT / f"perf-{tag}-{scenario}.data"
        perf = Proc(f"perf-{tag}-{scenario}",
                    ["perf", "record", "-e", "cpu-clock", "-F", "999", "--call-graph", "dwarf,8192",
                     "-p", lk.pids[0], "-o", data, "--", "sleep", DURATION + WARMUP])
        time.sleep(0.3)
        target = lk.urls[0] + spec.pop("path") if "path" in spec else token
        spec.setdefault("method", "POST")
        summary = load(f"{tag}-profiled-{scenario}", target, pids=lk.pids, **spec)
        perf.popen.wait(timeout=DURATION + WARMUP + 60)
        perf.stop()
        profiles[scenario] = {"perf_data": str(data.relative_to(ROOT)), "load": summary,
                              "breakdown": perf_breakdown(data)}
    return profiles


# Where server CPU goes. Each sample is walked from its leaf towards the root and belongs to
# the first *specific* category that a frame matches (so serde_json called while signing counts
# as JSON, and SQLite's own malloc as SQLite); samples with no specific frame fall back to a
# generic category by their leaf (kernel, allocation, other).
SPECIFIC = [
    ("page faults on fresh memory (kernel zeroing new pages)", r"clear_page|exc_page_fault|do_anonymous_page|handle_mm_fault"),
    ("argon2 (password hashing)", r"argon2|blake2"),
    ("RSA signing (aws-lc)", r"RsaKeyPair|rsa_sign|RSA_sign|RSA_private|rsa_default_sign|BN_mod_exp|bn_mod_exp|bn_mul_mont|bn_sqr|mont_|rsaz|SigningKey::sign"),
    ("token verification (jsonwebtoken)", r"jsonwebtoken|RSA_verify|rsa_verify|TokenVerifier"),
    ("SQLite", r"sqlite3|rusqlite"),
    ("Redis client", r"redis::|combine::"),
    ("store glue (spawn_blocking hand-off, store wrappers)", r"spawn_blocking|blocking::pool|store::embedded|store::redis|EmbeddedStore|RedisStore|store_operation"),
    ("serde (JSON, forms)", r"serde_json|serde_urlencoded|serde::de|serde::ser|::serialize|::deserialize"),
    ("logging and audit (tracing)", r"tracing_subscriber|json_subscriber|tracing_core|tracing::|audit::"),
    ("metrics (prometheus)", r"prometheus|latchkey::metrics"),
    ("base64", r"base64"),
    ("random (jti)", r"getrandom|RAND_bytes|CTR_DRBG|rand_core|SystemRandom|TokenId::generate|random_token"),
    ("SHA-256 (client secret)", r"sha256|SHA256|sha2::|digest::|verify_client_secret"),
    ("latchkey handlers (grants, claims, middleware)", r"latchkey::"),
    ("HTTP and routing (hyper, poem, poem-openapi)", r"hyper::|poem::|poem_openapi|http::|httparse|mio::|tokio::net"),
    ("tokio scheduler", r"tokio::"),
]
GENERIC_KERNEL = "kernel (syscalls, network, scheduling)"
ALLOC = re.compile(r"malloc|free|realloc|cfree|memcpy|memmove|memset|__libc_calloc")


def perf_breakdown(data):
    """Share of samples per category (see SPECIFIC), and the top leaf symbols."""
    try:
        text = subprocess.run(["perf", "script", "-i", str(data), "-F", "comm,tid,ip,sym,dso"],
                              capture_output=True, text=True, timeout=600).stdout
    except Exception as e:  # perf missing or failed: the report says so
        return {"error": str(e)}
    compiled = [(name, re.compile(rx)) for name, rx in SPECIFIC]
    counts, leaf_symbols, total = {}, {}, 0
    for block in text.split("\n\n"):
        lines = [l.strip() for l in block.strip().splitlines()]
        if len(lines) < 2:
            continue
        frames = [f.split(None, 1)[1] if " " in f else f for f in lines[1:]]
        total += 1
        leaf = re.sub(r"\+0x[0-9a-f]+", "", frames[0])
        leaf_symbols[leaf] = leaf_symbols.get(leaf, 0) + 1
        category = None
        for frame in frames:
            for name, rx in compiled:
                if rx.search(frame):
                    category = name
                    break
            if category:
                break
        if category is None:
            if "kernel.kallsyms" in frames[0]:
                category = GENERIC_KERNEL
            elif ALLOC.search(frames[0]):
                category = "memory allocation"
            else:
                category = "other"
        counts[category] = counts.get(category, 0) + 1
    top = sorted(leaf_symbols.items(), key=lambda kv: -kv[1])[:25]
    return {"samples": total,
            "categories": {k: v / max(1, total) for k, v in sorted(counts.items(), key=lambda kv: -kv[1])},
            "top_self": [(sym[:160], n / max(1, total)) for sym, n in top]}


def phase_scaling(redis):
    """One, two and three replicas on one Redis."""
    scaling = {}
    for count in (1, 2, 3):
        tag = f"scaling-{count}"
        lk = Latchkey(tag, redis)
        lk.provision()
        lk.start(count)
        token_urls = [u + "/oauth/token" for u in lk.urls]
        before = redis.snapshot()
        cc = load(f"{tag}-client_credentials", token_urls, method="POST",
                  headers=[FORM, basic("svc", lk.secret)], body="grant_type=client_credentials",
                  pids=lk.pids)
        cc["redis"] = Redis.delta(before, redis.snapshot(), cc["ok_all"])
        pool = issue_pool(tag, token_urls, POOL_FORM, pool_size(cc["rps"] / 2))
        before = redis.snapshot()
        refresh = load(f"{tag}-refresh", token_urls, method="POST", headers=[FORM], vars_file=pool,
                       body="grant_type=refresh_token&client_id=web&refresh_token={var}",
                       pids=lk.pids)
        refresh["redis"] = Redis.delta(before, redis.snapshot(), refresh["ok_all"])
        scaling[count] = {"client_credentials": cc, "refresh": refresh}
        lk.stop()
        redis.command("FLUSHALL")
    return scaling


# ---------------------------------------------------------------------------------------------
# Peers

def peer_key():
    path = OUT / "peer-key.pem"
    if not path.exists():
        run([VENV / "bin" / "python", "-c",
             "from cryptography.hazmat.primitives.asymmetric import rsa;"
             "from cryptography.hazmat.primitives import serialization as s;"
             "k=rsa.generate_private_key(public_exponent=65537,key_size=2048);"
             f"open({str(path)!r},'wb').write(k.private_bytes(s.Encoding.PEM,s.PrivateFormat.PKCS8,s.NoEncryption()))"])
    return path


PEER_SECRET = base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("=")


def phase_flask(redis, mode):
    tag = f"flask-{mode}"
    seed = OUT / "flask-seed.json"
    seed.write_text(json.dumps({
        "users": {"alice": {"password": PASSWORD, "roles": ["user"]},
                  "pool": {"password": POOL_PASSWORD, "roles": ["user"], "cheap": True}},
        "clients": {"svc": {"secret": PEER_SECRET, "scope": "read"}},
    }))
    port = free_port()
    proc = Proc(tag, [VENV / "bin" / "gunicorn", "-w", NPROC, "-b", f"127.0.0.1:{port}",
                      "--chdir", BENCH / "peers" / "flask", "app:app"],
                env={"PEER_KEY_MODE": mode, "PEER_PRIVATE_KEY": str(peer_key()),
                     "PEER_REDIS_PORT": str(redis.port), "PEER_SEED": str(seed),
                     "PEER_ISSUER": f"http://127.0.0.1:{port}"})
    url = f"http://127.0.0.1:{port}"
    wait_http(url + "/healthz", proc, timeout=90)
    pids = [proc.pid]
    figures = {}
    figures["client_credentials"] = cc = load(
        f"{tag}-client_credentials", url + "/oauth/token", method="POST",
        headers=[FORM, basic("svc", PEER_SECRET)], body="grant_type=client_credentials", pids=pids)
    figures["password"] = load(f"{tag}-password", url + "/oauth/token", method="POST",
                               headers=[FORM], body=PASSWORD_FORM, pids=pids)
    pool = issue_pool(tag, url + "/oauth/token", POOL_FORM, pool_size(cc["rps"] / 2))
    figures["refresh"] = load(f"{tag}-refresh", url + "/oauth/refresh", method="POST",
                              headers=["Authorization: Bearer {var}"], vars_file=pool, pids=pids)
    figures["jwks"] = load(f"{tag}-jwks", url + "/.well-known/jwks.json", pids=pids)
    access = http(url + "/oauth/token", PASSWORD_FORM,
                  {"Content-Type": "application/x-www-form-urlencoded"})["access_token"]
    figures["userinfo"] = load(f"{tag}-userinfo", url + "/userinfo",
                               headers=[f"Authorization: Bearer {access}"], pids=pids)
    proc.stop()
    redis.command("FLUSHALL")
    return {"scenarios": figures, "workers": NPROC}


def phase_oidc(workers):
    tag = f"oidc-provider-{workers}w"
    port = free_port()
    proc = Proc(tag, ["node", BENCH / "peers" / "oidc-provider" / "server.mjs"],
                env={"PEER_PORT": str(port), "PEER_PRIVATE_KEY": str(peer_key()),
                     "PEER_CLIENT_SECRET": PEER_SECRET, "PEER_WORKERS": str(workers),
                     "NODE_ENV": "production"},
                cwd=BENCH / "peers" / "oidc-provider")
    url = f"http://127.0.0.1:{port}"
    wait_http(url + "/jwks", proc, timeout=60)
    # Node cluster forks its workers lazily; let them all listen.
    time.sleep(1.0)
    pids = [proc.pid]
    figures = {
        "client_credentials": load(f"{tag}-client_credentials", url + "/token", method="POST",
                                   headers=[FORM, basic("svc", PEER_SECRET)],
                                   body="grant_type=client_credentials&scope=read", pids=pids),
        "jwks": load(f"{tag}-jwks", url + "/jwks", pids=pids),
    }
    proc.stop()
    return {"scenarios": figures, "workers": workers}


# ---------------------------------------------------------------------------------------------
# Limits and hello-world

ARGON2_CFFI = """
import sys, time
from argon2 import PasswordHasher
ph = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)
stored = ph.hash("correct horse battery")
ph.verify(stored, "correct horse battery")
duration = float(sys.argv[1])
ops, t0, c0 = 0, time.perf_counter(), time.thread_time()
while time.perf_counter() - t0 < duration and ops < 10000:
    ph.verify(stored, "correct horse battery")
    ops += 1
wall, cpu = time.perf_counter() - t0, time.thread_time() - c0
print(f'{{"what": "argon2id verify, argon2-cffi (libargon2)", "threads": 1, "ops": {ops}, "wall_s": {wall}, '
      f'"cpu_s": {cpu}, "per_s": {ops / wall}, "cpu_us_per_op": {cpu * 1e6 / ops}, "per_cpu_s": {ops / cpu}}}')
"""


def phase_limits():
    out = RAW / "limits.json"
    run([BIN / "limits", "--duration", max(2.0, DURATION / 2), "--argon-duration", max(3.0, DURATION / 2),
         "--out", out], timeout=600)
    limits = json.loads(out.read_text())
    # latchkey-verify's full check of an access token against the bare signature check, paired
    # rounds on one core (the crate's own example; its README explains the method).
    example = ROOT / "target" / "release" / "examples" / "verify_rate"
    if example.exists():
        done = run([example], timeout=600, check=False)
        figures = {}
        for key, pattern in (("raw_per_s", r"key parsed once \(aws-lc-rs\):\s+([0-9.]+)"),
                             ("ours_per_s", r"verify_cached \(full checks\):\s+([0-9.]+)"),
                             ("median_ratio_pct", r"median of paired rounds ([0-9.]+)")):
            found = re.search(pattern, done.stdout)
            if found:
                figures[key] = float(found.group(1))
        if len(figures) == 3:
            limits["latchkey_verify"] = figures
    python = VENV / "bin" / "python"
    if python.exists():
        # The peer's argon2 implementation, same parameters, one core: how our library compares.
        done = run([python, "-c", ARGON2_CFFI, max(3.0, DURATION / 2)], timeout=120, check=False)
        if done.returncode == 0:
            limits["argon2id_cffi_one_core"] = json.loads(done.stdout)
    return limits


def raw_sign_cpu_us(label):
    """CPU µs of one raw RS256 signature, measured now (2 s on one core)."""
    out = RAW / f"sign-{label}.json"
    run([BIN / "limits", "--sign-only", "--duration", 2, "--out", out], timeout=120)
    return json.loads(out.read_text())["rs256_sign"]["cpu_us_per_op"]


def phase_hello():
    port = free_port()
    proc = Proc("hello", [BIN / "hello", f"127.0.0.1:{port}"])
    url = f"http://127.0.0.1:{port}/"
    wait_http(url, proc)
    figures = {"load": load("hello", url, pids=[proc.pid]),
               # The baseline for JWKS-during-a-flood, at the observer's concurrency.
               f"load_c{OBSERVER_CONC}": load(f"hello-c{OBSERVER_CONC}", url, conc=OBSERVER_CONC,
                                               pids=[proc.pid])}
    if shutil.which("wrk"):
        figures["wrk"] = wrk("hello-wrk", url)
    proc.stop()
    return figures


def wrk(label, url):
    """The same target under wrk (one thread, same connections): a check on our generator."""
    argv = ["wrk", "-t1", f"-c{CONC}", f"-d{max(1, int(round(DURATION)))}s", "--latency", url]
    record_command(argv)
    text = subprocess.run(argv, capture_output=True, text=True, timeout=DURATION + 60).stdout
    (RAW / f"{label}.txt").write_text(text)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", text)

    def ms(p):
        m = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)", text, re.M)
        if not m:
            return None
        value, unit = float(m.group(1)), m.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value
    return {"rps": float(rps.group(1)) if rps else None, "p50_ms": ms(50), "p99_ms": ms(99)}


# ---------------------------------------------------------------------------------------------
# Versions

def versions():
    def out(argv, cwd=None):
        try:
            return subprocess.run(argv, capture_output=True, text=True, timeout=30, cwd=cwd).stdout.strip() \
                or subprocess.run(argv, capture_output=True, text=True, timeout=30, cwd=cwd).stderr.strip()
        except Exception:
            return None
    v = {
        "rustc": out(["rustc", "-V"]),
        "latchkey": out([str(LATCHKEY), "--version"]),
        "latchkey_binary": str(LATCHKEY.relative_to(ROOT)) if LATCHKEY.is_relative_to(ROOT) else str(LATCHKEY),
        "git_commit": os.environ.get("BENCH_REV_SHA") or out(["git", "-C", str(ROOT), "rev-parse", "HEAD"]),
        "git_dirty": False if os.environ.get("BENCH_REV_SHA") else
        bool(out(["git", "-C", str(ROOT), "status", "--porcelain", "--", "src", "Cargo.toml", "Cargo.lock"])),
        "measured_rev": os.environ.get("BENCH_REV_SHA"),
        "redis": out(["redis-server", "--version"]),
        "python": platform.python_version(),
        "node": out(["node", "--version"]),
        "wrk": (out(["wrk", "--version"]) or "").splitlines()[0] if shutil.which("wrk") else None,
        "perf": out(["perf", "--version"]) if shutil.which("perf") else None,
        "kernel": platform.release(),
    }
    py = VENV / "bin" / "python"
    if py.exists():
        v["python_venv"] = out([str(py), "-c", "import sys; print(sys.version.split()[0])"])
        v["peer_packages"] = out([str(py), "-c",
                                  "import importlib.metadata as m;"
                                  "print(', '.join(f'{p} {m.version(p)}' for p in "
                                  "['flask','flask-jwt-extended','gunicorn','pyjwt','cryptography','argon2-cffi','redis']))"])
    pkg = BENCH / "peers" / "oidc-provider" / "node_modules" / "oidc-provider" / "package.json"
    if pkg.exists():
        v["oidc_provider"] = json.loads(pkg.read_text())["version"]
    return v


def machine():
    cpuinfo = open("/proc/cpuinfo").read()
    model = re.search(r"model name\s*:\s*(.*)", cpuinfo)
    mem = re.search(r"MemTotal:\s*(\d+)", open("/proc/meminfo").read())
    return {"nproc": NPROC, "cpu_model": model.group(1).strip() if model else platform.processor(),
            "mem_total_gib": round(int(mem.group(1)) / 1024 / 1024, 1) if mem else None,
            "loadavg_start": open("/proc/loadavg").read().split()[:3]}


# ---------------------------------------------------------------------------------------------

def main():
    for d in (OUT, RAW, LOGS):
        d.mkdir(parents=True, exist_ok=True)
    results["machine"] = machine()
    results["versions"] = versions()
    t0 = time.time()
    phases = results["phases"]

    def save():
        results["elapsed_s"] = time.time() - t0
        results["machine"]["loadavg_end"] = open("/proc/loadavg").read().split()[:3]
        (OUT / "results.json").write_text(json.dumps(results, indent=2))

    def phase(name, fn, *args):
        if not wanted(name.split(":")[0]):
            return
        log(f"phase {name}")
        started = time.time()
        try:
            phases[name] = fn(*args)
        except Exception as e:  # one failed phase must not lose the others' figures
            log(f"phase {name} FAILED: {e}")
            phases[name] = {"error": str(e)}
        if isinstance(phases[name], dict):
            phases[name]["phase_seconds"] = time.time() - started
        save()

    phase("limits", phase_limits)
    phase("hello", phase_hello)
    phase("latchkey-embedded", phase_latchkey, "embedded")
    phase("memory-embedded", phase_memory, "embedded")
    if shutil.which("valgrind") and shutil.which("callgrind_control"):
        phase("instructions", phase_instructions)
    redis = Redis("redis")
    phase("latchkey-redis", phase_latchkey, "redis", redis)
    phase("memory-redis", phase_memory, "redis", redis)
    redis.command("FLUSHALL")
    phase("scaling", phase_scaling, redis)
    if (VENV / "bin" / "gunicorn").exists():
        phase("flask-pem", phase_flask, redis, "pem")
        phase("flask-parsed", phase_flask, redis, "parsed")
    if (BENCH / "peers" / "oidc-provider" / "node_modules" / "oidc-provider").exists():
        phase("oidc-provider-1w", phase_oidc, 1)
        phase(f"oidc-provider-{NPROC}w", phase_oidc, NPROC)
    redis.proc.stop()
    save()
    log(f"done in {time.time() - t0:.0f} s; results in {OUT / 'results.json'}")


def reanalyse():
    """Recomputes the profile breakdowns of results.json from its perf data (after a change to
    the categories), without measuring again."""
    path = OUT / "results.json"
    data = json.loads(path.read_text())
    for phase in data["phases"].values():
        for profile in ((phase or {}).get("profile") or {}).values():
            profile["breakdown"] = perf_breakdown(ROOT / profile["perf_data"])
    path.write_text(json.dumps(data, indent=2))
    log(f"re-analysed the profiles in {path}")


if __name__ == "__main__":
    if sys.argv[1:] == ["--reanalyse"]:
        reanalyse()
    else:
        main()
