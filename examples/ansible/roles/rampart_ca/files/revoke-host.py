"""Revoke every certificate the Rampart CA issued to one host.

The CA's audit log (one JSON line per issued or renewed certificate) names
the subject and serial of each; serials already revoked by an earlier run
are listed in STATE_DIR/NAME.revoked, so a second run revokes nothing and
prints nothing. Prints "revoked SERIAL" for each revocation.
"""
import argparse
import json
import os
import subprocess
import sys


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--pki", required=True)
    p.add_argument("--config", required=True)
    p.add_argument("--audit-log", required=True)
    p.add_argument("--state-dir", required=True)
    p.add_argument("name")
    a = p.parse_args()

    serials = []
    try:
        with open(a.audit_log) as f:
            for n, line in enumerate(f, 1):
                line = line.strip()
                if not line:
                    continue
                try:
                    rec = json.loads(line)
                except ValueError as e:
                    sys.exit(f"{a.audit_log}:{n}: not JSON: {e}")
                if rec.get("subject") == a.name and rec.get("serial") and "ssh_type" not in rec:
                    if rec["serial"] not in serials:
                        serials.append(rec["serial"])
    except FileNotFoundError:
        return
    os.makedirs(a.state_dir, mode=0o700, exist_ok=True)
    state = os.path.join(a.state_dir, a.name + ".revoked")
    done = set()
    if os.path.exists(state):
        with open(state) as f:
            done = {l.strip() for l in f if l.strip()}
    for s in serials:
        if s in done:
            continue
        r = subprocess.run([a.pki, "revoke", "--config", a.config, "--reason", "host retired", s],
                           capture_output=True, text=True)
        if r.returncode != 0 and "already revoked" not in (r.stdout + r.stderr).lower():
            sys.exit(f"pki revoke {s} ({a.name}): exit {r.returncode}: {r.stderr.strip()}")
        with open(state, "a") as f:
            f.write(s + "\n")
        print("revoked", s)


if __name__ == "__main__":
    main()
