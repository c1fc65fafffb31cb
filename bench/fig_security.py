"""Figure 10: what TLS, mTLS and tokens cost SubmitQuote.

The quote service on SQLite (its default) is measured twice in the same
interleaved rounds: in plaintext with no tokens, and with TLS, mTLS and a
bearer token verified on every call (HS256, the cheapest to verify; RS256
costs more). Both serve the same store and the no-op processor; the ratio is
secured over plain, at each of SECURITY_CONCURRENCIES. The load generators
open their channels once, so the figure is the per-call cost of encryption
and of verifying the token, not of handshakes.
"""

from bench import servers
from bench.context import Run
from bench.fig_unary import per_cpu_second
from bench.procs import free_port
from bench.results import Figure, Target
from bench.unary import compare
from tools.dev_credentials import write

SECURITY_CONCURRENCIES = (1, 64)
SECURITY_TARGET = Target("ratio", ">=", 0.8)
SECURITY_NAMES = tuple(
    f"security.SubmitQuote.c{c}.{stat}"
    for c in SECURITY_CONCURRENCIES
    for stat in ("rps", "calls_per_cpu_s", "p99_ms")
)
PLAIN_LABEL = "the same quote service in plaintext with no tokens, same rounds"


async def figure_security(run: Run) -> None:
    run.say("figure 10: SubmitQuote with TLS, mTLS and tokens, against plaintext")
    credentials = run.work / "credentials"
    write(credentials)

    def path(name: str) -> str:
        return str(credentials / name)

    health = free_port()
    secured_spec = servers.quote(
        "secured",
        args=(
            "--tls-cert-file", path("server.pem"), "--tls-key-file", path("server.key"),
            "--tls-client-ca-file", path("ca.pem"), "--auth-jwt-key-file", path("jwt.secret"),
            "--health-port", str(health),
        ),
        health_port=health,
    )  # fmt: skip
    plain, secured = await run.servers.start_all(servers.quote("plain"), secured_spec)
    run.client_security[secured.address] = {
        "ca_file": path("ca.pem"),
        "cert_file": path("server.pem"),
        "key_file": path("server.key"),
        "token_file": path("admin.token"),
    }
    try:
        for concurrency in SECURITY_CONCURRENCIES:
            run.say(f"figure 10: SubmitQuote at concurrency {concurrency}")
            results = await compare(
                run,
                {"plain": [plain], "secured": [secured]},
                "SubmitQuote",
                concurrency,
                rounds=run.sizes.rounds,
            )
            subject, reference = results["secured"], results["plain"]
            base = f"security.SubmitQuote.c{concurrency}"
            params = {"concurrency": concurrency, "store": "sqlite", "calls": subject.calls}
            errors = f"{subject.errors} errors" if subject.errors else ""
            run.add(
                Figure(
                    f"{base}.rps", subject.rps, "calls/s", reference.rps, PLAIN_LABEL,
                    SECURITY_TARGET, errors, params,
                ),
                Figure(
                    f"{base}.calls_per_cpu_s", per_cpu_second(subject), "calls/CPU-s",
                    per_cpu_second(reference), PLAIN_LABEL, params=params,
                ),
                Figure(
                    f"{base}.p99_ms", subject.p99_ms, "ms", reference.p99_ms, PLAIN_LABEL,
                    params=params,
                ),
            )  # fmt: skip
    finally:
        await run.servers.stop(plain, secured)
