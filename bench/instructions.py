"""Instructions per token, counted by callgrind: the one figure of this benchmark that the host
does not move.

CPU time per request drifts with the VM (one raw signature cost between 240 and 330 µs within a
minute on the machine this was written on), and it includes the kernel: loopback TCP, whose
receive side runs in the sender's context, and the wake-ups of a load generator that shares the
cores. callgrind counts the user-space instructions the service executes, the same for the same
binary and inputs whatever else runs, so it answers a narrower question exactly: how much work
does Latchkey's own code add to the signatures it makes? The kernel's share is the difference
between CPU time and this (see `kernel_share` in bench.py).

valgrind runs aws-lc's AVX2 code (it has no AVX-512), so a signature here is more instructions
than natively; what is compared is the rest of a token to the signatures of the same run.
"""

import glob
import re
import subprocess

# Functions reported on their own, with everything they call; the first that matches a name wins.
PARTS = [
    ("signing (aws-lc, through SigningKey::sign)", r"^latchkey::keys::SigningKey::sign$"),
    ("verifying the presented token", r"^latchkey::tokens::verify::TokenVerifier::verify_\w+$"),
    ("client authentication (store read, secret check)",
     r"^latchkey::oauth::client_auth::<impl latchkey::oauth::Authority>::authenticate_client_state::\{\{closure\}\}$"),
    ("log lines (access and audit: format and write)", r"^tracing_core::event::Event::dispatch$"),
    ("store reads (user and its cut-offs)",
     r"^<latchkey::store::embedded::EmbeddedStore as latchkey::store::Store>::user_and_not_before::\{\{closure\}\}$"),
    ("the store's write transactions and commits (writer thread)",
     r"^<latchkey::store::embedded::writer::Pending<T,F> as latchkey::store::embedded::writer::Job>::run$"
     r"|^sqlite3BtreeCommitPhase(One|Two)\b"),
    ("request body and form parsing", r"^<latchkey::api::oauth::TokenBody as poem_openapi::base::ApiExtractor>::from_request::\{\{closure\}\}$"),
    ("JSON answer", r"^<latchkey::api::oauth::TokenResponse as poem::web::IntoResponse>::into_response$"),
]


def inclusive(path):
    """{function: inclusive instructions} of one callgrind output file."""
    out = subprocess.run(["callgrind_annotate", "--inclusive=yes", "--threshold=100", path],
                         capture_output=True, text=True, check=True).stdout
    counts = {}
    for line in out.splitlines():
        m = re.match(r"\s*([\d,]+)\s+\(\s*[\d.]+%\)\s+(?:[^\s:]*:(?!:))?(.*?)(?:\s+\[.*\])?$", line)
        if m:
            name = m.group(2).strip()
            counts[name] = counts.get(name, 0) + int(m.group(1).replace(",", ""))
    return counts


def totals(path):
    out = subprocess.run(["callgrind_annotate", path], capture_output=True, text=True,
                         check=True).stdout
    m = re.search(r"([\d,]+)\s+\(100\.0%\)\s+PROGRAM TOTALS", out)
    return int(m.group(1).replace(",", "")) if m else 0


def measure(start, drive, requests, warmup, signatures, out_prefix):
    """Starts the service under callgrind (`start(wrapper)` returns its pid), lets `drive(n)`
    send n requests of the scenario twice (a warm-up, then the counted ones between a reset and
    a dump of the counters), and returns instructions per request, split into PARTS."""
    pid = start(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out_prefix}",
                 "--dump-instr=no", "--collect-systime=no"])
    drive(warmup)
    subprocess.run(["callgrind_control", "--zero", str(pid)], check=True, capture_output=True)
    done = drive(requests)
    subprocess.run(["callgrind_control", "--dump", str(pid)], check=True, capture_output=True)
    dumps = sorted(glob.glob(f"{out_prefix}.*"), key=lambda p: int(p.rsplit(".", 1)[1]))
    if not dumps or not done:
        return {"error": "no callgrind dump or no answered request"}
    counts = inclusive(dumps[-1])
    total = totals(dumps[-1]) / done
    parts, claimed = [], set()
    for label, rx in PARTS:
        names = [n for n in counts if re.search(rx, n) and n not in claimed]
        claimed.update(names)
        value = sum(counts[n] for n in names) / done
        if value:
            parts.append([label, value])
    signing = next((v for label, v in parts if label.startswith("signing")), 0)
    return {
        "requests": done,
        "instructions_per_request": total,
        "signing_per_request": signing,
        "signatures": signatures,
        "ratio_to_one_signature": signatures * total / signing if signing else None,
        "parts": parts,
        "dump": dumps[-1],
    }
