"""``python -m airflow_provider_prefs.sandbox``: serve both vendor APIs locally until stopped."""

from __future__ import annotations

import argparse
import signal
import threading
import time
from pathlib import Path

from airflow_provider_prefs.sandbox.server import _uvicorn_server, bind
from airflow_provider_prefs.sandbox.state import SandboxState
from airflow_provider_prefs.sandbox.tls import self_signed_cert


def main(argv: list[str] | None = None) -> int:
    """Parse arguments and serve in the foreground (SIGTERM/SIGINT stop it cleanly)."""
    parser = argparse.ArgumentParser(prog="python -m airflow_provider_prefs.sandbox", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    parser.add_argument("--seed", type=Path, help="JSON seed file (default: the bundled seed.json)")
    parser.add_argument("--pending-delay", type=float, default=2.0, help="seconds a profile stays 'Pending Update'")
    parser.add_argument("--token-lifetime", type=int, default=3600, help="seconds an issued token is valid")
    parser.add_argument("--port-file", type=Path, help="write the bound port here once listening")
    parser.add_argument("--tls-cert", help="serve HTTPS with this PEM certificate (with --tls-key)")
    parser.add_argument("--tls-key", help="PEM private key for --tls-cert")
    parser.add_argument(
        "--tls-self-signed",
        type=Path,
        metavar="DIR",
        help="serve HTTPS with a new self-signed certificate written to DIR/cert.pem (use it as ca_bundle)",
    )
    args = parser.parse_args(argv)
    if bool(args.tls_cert) != bool(args.tls_key):
        parser.error("--tls-cert and --tls-key go together")
    if args.tls_cert and args.tls_self_signed:
        parser.error("use either --tls-cert/--tls-key or --tls-self-signed")

    state = SandboxState(args.seed, pending_delay=args.pending_delay, token_lifetime=args.token_lifetime)
    sock = bind(args.host, args.port)
    port = sock.getsockname()[1]
    tls = (args.tls_cert, args.tls_key) if args.tls_cert else None
    if args.tls_self_signed:
        tls = self_signed_cert(args.tls_self_signed, args.host)
    server = _uvicorn_server(state, tls)
    scheme = "https" if tls else "http"

    def announce() -> None:
        while not server.started and not server.should_exit:
            time.sleep(0.01)
        if server.started:
            if args.port_file:
                args.port_file.write_text(str(port))
            print(f"sandbox listening on {scheme}://{args.host}:{port}", flush=True)

    threading.Thread(target=announce, daemon=True).start()
    # uvicorn shuts down gracefully on SIGTERM/SIGINT, then re-raises the signal to the handler that
    # was there before it; a no-op handler makes that a clean exit (status 0) instead of a kill.
    for stop_signal in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop_signal, lambda *_: None)
    server.run(sockets=[sock])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
