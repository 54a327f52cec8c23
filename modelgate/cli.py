"""``modelgate``: the command line for CI pipelines and people at a terminal.

Exit codes, the same for every command:

- 0: done (registered, applied, deployed and ready, verified);
- 1: an error (bad input, refused token, no permission, server unreachable…);
- 2: refused by a rule: a promotion blocked by a failed gate or rejected by an approver,
  a verification that found a difference;
- 3: not decided yet: a promotion waiting for approvals (or a deployment still starting)
  when ``--wait`` ran out of time, or when not waiting at all.

``--json`` prints the answer as JSON on stdout and errors as ``{"error": …}`` on stderr.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

from modelgate import __version__
from modelgate.client import ApiError, Client, JsonObject, ModelGateError, WaitTimeout

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_REFUSED = 2
EXIT_UNDECIDED = 3

# The stages a version passes through on its way to each target, from training.
_ROUTE = {"staging": ("evaluation", "staging"), "production": ("evaluation", "production")}


class UsageError(ModelGateError):
    """What the user typed (or did not configure) cannot work."""

    code = "usage"


# --- configuration ----------------------------------------------------------------------


def config_path() -> Path:
    """``$MODELGATE_CONFIG``, else ``$XDG_CONFIG_HOME/modelgate/config.json`` (``~/.config`` by default)."""
    explicit = os.environ.get("MODELGATE_CONFIG")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(base) / "modelgate" / "config.json"


def config_read(path: Path) -> JsonObject:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read the configuration {path}: {exc}") from exc
    return data if isinstance(data, dict) else {}


def config_write(path: Path, data: JsonObject) -> None:
    """Write the file readable by its owner only (it holds a token), atomically."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, temporary = tempfile.mkstemp(prefix=".config-", dir=path.parent)  # created 0600
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(data, handle, indent=2)
            handle.write("\n")
        os.chmod(temporary, 0o600)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def client_from(args: argparse.Namespace) -> Client:
    """The server and token: ``--url`` and the environment override the saved login."""
    saved = config_read(config_path())
    url = args.url or os.environ.get("MODELGATE_URL") or saved.get("url")
    token = os.environ.get("MODELGATE_TOKEN") or saved.get("token")
    if not url:
        raise UsageError("no server: run `modelgate login --url URL` or set MODELGATE_URL")
    if not token:
        raise UsageError("no token: run `modelgate login` or set MODELGATE_TOKEN")
    return Client(url, token, timeout=args.http_timeout)


# --- output -----------------------------------------------------------------------------


class Output:
    """Human lines or one JSON document on stdout; progress (not with --json) and errors on stderr."""

    def __init__(self, *, as_json: bool, stdout: TextIO, stderr: TextIO) -> None:
        self.as_json = as_json
        self.stdout = stdout
        self.stderr = stderr

    def line(self, text: str = "") -> None:
        if not self.as_json:
            print(text, file=self.stdout)

    def progress(self, text: str) -> None:
        # Quiet under --json: stderr then holds nothing but an error document.
        if not self.as_json:
            print(text, file=self.stderr, flush=True)

    def document(self, data: Any) -> None:
        if self.as_json:
            json.dump(data, self.stdout, indent=2, sort_keys=True)
            self.stdout.write("\n")

    def undecided(self, exc: WaitTimeout) -> None:
        """A wait that ran out: not an error of the command, but reported like one."""
        if self.as_json:
            print(json.dumps({"error": exc.to_dict()}, sort_keys=True), file=self.stderr)
        else:
            print(f"modelgate: {exc}", file=self.stderr)

    def error(self, exc: ModelGateError) -> None:
        if self.as_json:
            print(json.dumps({"error": exc.to_dict()}, sort_keys=True), file=self.stderr)
        else:
            print(f"modelgate: error: {exc}", file=self.stderr)
            details = exc.details if isinstance(exc, ApiError) else None
            if isinstance(details, dict):
                for key, value in details.items():
                    print(f"  {key}: {value}", file=self.stderr)


def _gate_lines(transition: JsonObject) -> list[str]:
    marks = {"passed": "passed ", "failed": "FAILED ", "waiting": "waiting"}
    return [
        f"  [{marks.get(gate.get('status'), gate.get('status'))}] {gate.get('rule')}: {gate.get('detail')}"
        for gate in transition.get("gates") or []
    ]


def _transition_lines(transition: JsonObject) -> list[str]:
    head = (
        f"{transition['model']} v{transition['version']}: {transition['from_stage']} -> {transition['to']}: "
        f"{transition['status']} (request #{transition['id']})"
    )
    lines = [head, *_gate_lines(transition)]
    detail = transition.get("status_detail") or ""
    # A blocked request's detail starts by repeating its failed gates, printed above.
    failed = "; ".join(f"{g['rule']}: {g['detail']}" for g in transition.get("gates") or [] if g["status"] == "failed")
    detail = detail.removeprefix(f"blocked by {failed}").lstrip("; ") if failed else detail
    if detail:
        lines.append(f"  {detail}")
    for decision in transition.get("approvals") or []:
        comment = f": {decision['comment']}" if decision.get("comment") else ""
        verb = {"approve": "approved", "reject": "rejected"}.get(decision.get("decision"), decision.get("decision"))
        lines.append(f"  {verb} by {decision['user']} ({decision['role']}){comment}")
    return lines


# --- commands ---------------------------------------------------------------------------


def cmd_login(args: argparse.Namespace, out: Output) -> int:
    path = config_path()
    saved = config_read(path)
    url = args.url or os.environ.get("MODELGATE_URL") or saved.get("url")
    if not url:
        raise UsageError("give the server: modelgate login --url https://modelgate.example.com")
    if args.token_stdin:
        token = sys.stdin.readline().strip()
    elif os.environ.get("MODELGATE_TOKEN"):
        token = os.environ["MODELGATE_TOKEN"]
    elif sys.stdin.isatty():
        token = getpass.getpass("API token (from `manage.py issue_token`): ").strip()
    else:
        raise UsageError("no token: pipe it with --token-stdin or set MODELGATE_TOKEN")
    if not token:
        raise UsageError("the token is empty")
    client = Client(url, token, timeout=args.http_timeout)
    health = client.health()
    # Any authenticated read tells a refused token (401) from a good one.
    client.request("GET", "models/", params={"page_size": 1})
    config_write(path, {"url": client.base_url, "token": token})
    out.document({"url": client.base_url, "config": str(path), "server": health})
    out.line(f"Logged in to {client.base_url} (server {health.get('status')}); saved to {path}")
    return EXIT_OK


def cmd_status(args: argparse.Namespace, out: Output) -> int:
    client = client_from(args)
    model = client.model(args.model)
    versions = client.versions(args.model, limit=args.limit)
    deployments = client.deployments(args.model, limit=20)
    aliases = {alias: v["version"] for v in versions for alias in v.get("aliases") or []}
    out.document({"model": model, "versions": versions, "aliases": aliases, "deployments": deployments})
    production = model.get("production")
    out.line(
        f"{model['name']} (team {model['team']}, {model['task']}, primary metric {model.get('primary_metric') or '-'})"
    )
    out.line(f"production: v{production['version']} since {production['since']}" if production else "production: none")
    if aliases:
        out.line("aliases: " + ", ".join(f"{name} -> v{number}" for name, number in sorted(aliases.items())))
    metric = model.get("primary_metric")
    out.line("versions:")
    out.line(f"  {'VERSION':>7}  {'STAGE':<11}  {'STATUS':<7}  {(metric or 'METRIC')[:10]:>10}  CREATED")
    for version in versions:
        value = (version.get("metrics") or {}).get(metric) if metric else None
        shown = f"{value:.4f}" if isinstance(value, int | float) else "-"
        out.line(
            f"  {version['version']:>7}  {version['stage']:<11}  {version['status']:<7}  {shown:>10}  "
            f"{version['created_at']}"
        )
    out.line("deployments:" if deployments else "deployments: none")
    for deployment in deployments:
        routes = ", ".join(
            f"v{r['version']} {r['mode']} {round(r['weight'] * 100)}%" for r in deployment.get("routes") or []
        )
        ready = sum(1 for r in deployment.get("replicas") or [] if r.get("state") == "ready")
        out.line(
            f"  #{deployment['id']} {deployment['name']} ({deployment['target']}): {deployment['state']}; "
            f"routes {routes or 'none'}; {ready} replica(s) ready"
        )
    return EXIT_OK


def _tags(pairs: Sequence[str]) -> dict[str, str] | None:
    tags = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"--tag takes KEY=VALUE, not {pair!r}")
        tags[key] = value
    return tags or None


def cmd_register(args: argparse.Namespace, out: Output) -> int:
    client = client_from(args)
    if args.wait:
        out.progress(f"registering {args.model} from {args.run_id or args.source} (retrying up to {args.timeout:g}s)")
    version = client.register_version(
        args.model,
        run_id=args.run_id,
        source=args.source,
        artifact_path=args.artifact_path,
        description=args.description,
        tags=_tags(args.tag),
        parent_version=args.parent_version,
        dataset=args.dataset,
        idempotency_key=args.idempotency_key,
        retry_for=args.timeout if args.wait else None,
    )
    if args.wait:
        # Registration reads the artifact before it answers; read the version back to
        # report what the registry holds now.
        version = client.version(args.model, version["version"])
    out.document(version)
    metrics = ", ".join(f"{k} = {v:.4g}" for k, v in sorted((version.get("metrics") or {}).items()))
    out.line(
        f"Registered {version['name']} v{version['version']} ({version['stage']}, {version['status']}) "
        f"digest {version['digest'][:12]}…"
    )
    if metrics:
        out.line(f"  metrics: {metrics}")
    if version.get("mlflow_url"):
        out.line(f"  MLflow: {version['mlflow_url']}")
    if version.get("status") != "ready":
        out.progress(f"modelgate: error: v{version['version']} is {version.get('status')}, not ready")
        return EXIT_ERROR
    return EXIT_OK


def _transition_exit(transition: JsonObject, client: Client) -> int:
    status = transition.get("status")
    if status == "applied":
        return EXIT_OK
    if status in ("blocked", "rejected"):
        return EXIT_UNDECIDED if client.transition_undecided(transition) else EXIT_REFUSED
    if status == "pending":
        return EXIT_UNDECIDED
    return EXIT_ERROR


def _request(client: Client, args: argparse.Namespace, version: int, to: str, key: str | None) -> JsonObject:
    """Request the stage, or adopt the open request for it (a CI job run again): it is
    rechecked, since what blocked it may have changed."""
    try:
        return client.request_transition(args.model, version, to=to, reason=args.reason, idempotency_key=key)
    except ApiError as exc:
        open_id = exc.details.get("transition") if isinstance(exc.details, dict) else None
        if exc.code != "transition_open" or not isinstance(open_id, int):
            raise
        return client.recheck(open_id)


def cmd_promote(args: argparse.Namespace, out: Output) -> int:
    client = client_from(args)
    current = client.version(args.model, args.version)
    if current["stage"] == args.to:
        out.document({"model": args.model, "version": args.version, "stage": args.to, "status": "unchanged"})
        out.line(f"{args.model} v{args.version} is already in {args.to}")
        return EXIT_OK
    steps = [args.to]
    if current["stage"] == "training" and args.to in _ROUTE:
        steps = list(_ROUTE[args.to])
    transition: JsonObject = {}
    for step in steps:
        key = f"{args.idempotency_key}-{step}" if args.idempotency_key else None
        transition = _request(client, args, args.version, step, key)
        if transition.get("status") != "applied":
            # A replayed Idempotency-Key answers the request as it was first decided: read
            # what it is now (an approval or an evaluation may have moved it since).
            transition = client.transition(transition["id"])
        if args.wait and client.transition_undecided(transition):

            def report(seen: JsonObject) -> None:
                out.progress(f"request #{seen['id']}: {seen.get('status_detail') or seen['status']}")

            try:
                transition = client.wait_transition(
                    transition["id"], timeout=args.timeout, poll=args.poll, on_change=report
                )
            except WaitTimeout as exc:
                out.document(exc.last)
                out.line("\n".join(_transition_lines(exc.last or transition)))
                out.undecided(exc)
                return EXIT_UNDECIDED
        out.line("\n".join(_transition_lines(transition)))
        if transition.get("status") != "applied":
            break
    out.document(transition)
    code = _transition_exit(transition, client)
    if code == EXIT_UNDECIDED and not args.wait:
        out.progress("modelgate: not decided yet; run again with --wait to follow it")
    return code


def cmd_rollback(args: argparse.Namespace, out: Output) -> int:
    client = client_from(args)
    transition = client.rollback(args.model, reason=args.reason, to_version=args.to_version)
    out.document(transition)
    out.line("\n".join(_transition_lines(transition)))
    return EXIT_OK if transition.get("status") == "applied" else EXIT_ERROR


def cmd_deploy(args: argparse.Namespace, out: Output) -> int:
    client = client_from(args)
    deployment = client.create_deployment(
        args.model,
        deployment=args.name,
        version=args.version,
        alias=args.alias,
        replicas=args.replicas,
        target=args.target,
        pool=args.pool,
        idempotency_key=args.idempotency_key,
    )
    routes = ", ".join(f"v{r['version']} {r['mode']}" for r in deployment.get("routes") or [])
    out.line(f"Deployment #{deployment['id']} {deployment['name']} of {args.model}: {deployment['state']}; {routes}")
    if args.wait and deployment["target"] == "kubernetes":
        out.progress("modelgate: a kubernetes deployment is rendered as manifests; there is nothing to wait for")
    elif args.wait:
        try:
            deployment = client.wait_deployment(
                deployment["id"],
                timeout=args.timeout,
                poll=args.poll,
                on_change=lambda d: out.progress(f"deployment #{d['id']}: {d['state']}: {d.get('state_detail') or ''}"),
            )
        except WaitTimeout as exc:
            out.document(exc.last)
            out.undecided(exc)
            return EXIT_UNDECIDED
        out.line(f"Deployment #{deployment['id']}: {deployment['state']} {deployment.get('state_detail') or ''}")
    out.document(deployment)
    if deployment["state"] in ("failed", "stopped"):
        return EXIT_ERROR
    if args.wait and deployment["target"] != "kubernetes" and deployment["state"] != "ready":
        return EXIT_UNDECIDED
    return EXIT_OK


def cmd_verify(args: argparse.Namespace, out: Output) -> int:
    client = client_from(args)
    if (args.model is None) != (args.version is None):
        raise UsageError("verify an artifact with both --model and --version, or the audit trail with neither")
    if args.model is not None:
        report = client.verify_version(args.model, args.version)
        out.document(report)
        subject = f"{args.model} v{args.version}"
        if report.get("valid"):
            out.line(f"{subject}: the artifact matches its digest {str(report.get('digest'))[:12]}…")
            return EXIT_OK
        out.line(f"{subject}: the artifact does NOT match the digest recorded at registration")
        for key in ("changed", "missing", "unexpected"):
            for item in report.get(key) or []:
                out.line(f"  {key}: {item}")
        return EXIT_REFUSED
    report = client.audit_verify()
    out.document(report)
    if report.get("valid"):
        out.line(f"audit trail: {report.get('records')} records, hash chain intact")
        return EXIT_OK
    out.line(f"audit trail: hash chain BROKEN at record {report.get('first_bad')} ({report.get('records')} records)")
    return EXIT_REFUSED


# --- parser -----------------------------------------------------------------------------


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if value <= 0:
        raise argparse.ArgumentTypeError("must be above 0")
    return value


def build_parser() -> argparse.ArgumentParser:
    # The common options are accepted before or after the command; SUPPRESS keeps a
    # subcommand's absent option from overwriting the one given before it.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print JSON")
    common.add_argument("--url", default=argparse.SUPPRESS, help="the server (overrides MODELGATE_URL and login)")
    common.add_argument("--http-timeout", type=_positive, default=argparse.SUPPRESS, help="seconds per HTTP call (30)")

    parser = argparse.ArgumentParser(
        prog="modelgate",
        description="ModelGate from the command line: register, promote, roll back, deploy, verify.",
        epilog="Exit codes: 0 done, 1 error, 2 refused (blocked, rejected, verification failed), 3 not decided yet.",
    )
    parser.add_argument("--version", action="version", version=f"modelgate {__version__}")
    parser.add_argument("--json", action="store_true", default=False, help="print JSON; errors as JSON on stderr")
    parser.add_argument("--url", default=None, help="the server (overrides MODELGATE_URL and login)")
    parser.add_argument("--http-timeout", type=_positive, default=30.0, help="seconds per HTTP call (30)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, run: Callable[[argparse.Namespace, Output], int], text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, parents=[common], help=text, description=text)
        sub.set_defaults(run=run)
        return sub

    def waiting(sub: argparse.ArgumentParser, what: str, default: float = 1800) -> None:
        sub.add_argument("--wait", action="store_true", help=f"wait until {what}")
        sub.add_argument("--timeout", type=_positive, default=default, help=f"seconds --wait waits ({default:g})")
        sub.add_argument("--poll", type=_positive, default=2.0, help="seconds between checks while waiting (2)")

    login = command("login", cmd_login, "check a token against the server and save both (file mode 0600)")
    login.add_argument("--token-stdin", action="store_true", help="read the token from stdin")

    status = command("status", cmd_status, "a model's versions, stages, aliases and deployments")
    status.add_argument("--model", required=True)
    status.add_argument("--limit", type=int, default=20, help="newest versions shown (20)")

    register = command("register", cmd_register, "register the model an MLflow run logged as a new version")
    register.add_argument("--model", required=True)
    source = register.add_mutually_exclusive_group(required=True)
    source.add_argument("--run-id", help="the MLflow run that logged the model")
    source.add_argument("--source", help="an artifact URI instead of a run")
    register.add_argument("--artifact-path", help="which logged model of the run (default: the run's only one)")
    register.add_argument("--description")
    register.add_argument("--tag", action="append", default=[], metavar="KEY=VALUE")
    register.add_argument("--parent-version", type=int)
    register.add_argument("--dataset", help="the dataset it was trained on (a name in the model's team)")
    register.add_argument("--idempotency-key", help="the same key within 24 h answers the first registration")
    waiting(register, "registered, retrying while MLflow, S3 or the server are unavailable", 600)

    promote = command("promote", cmd_promote, "request a stage for a version and report its gates")
    promote.add_argument("--model", required=True)
    promote.add_argument("--version", type=int, required=True)
    promote.add_argument("--to", required=True, choices=("evaluation", "staging", "production", "archived"))
    promote.add_argument("--reason", default="")
    promote.add_argument("--idempotency-key", help="the same key within 24 h answers the first request")
    waiting(promote, "the request is decided (approvals, an evaluation it started, a canary's soak)")

    rollback = command("rollback", cmd_rollback, "put the previous (or a named) production version back")
    rollback.add_argument("--model", required=True)
    rollback.add_argument("--to-version", type=int)
    rollback.add_argument("--reason", required=True)

    deploy = command("deploy", cmd_deploy, "serve a version (default: production, followed)")
    deploy.add_argument("--model", required=True)
    chosen = deploy.add_mutually_exclusive_group()
    chosen.add_argument("--version", type=int)
    chosen.add_argument("--alias")
    deploy.add_argument("--name", help="the deployment's name (production)")
    deploy.add_argument("--replicas", type=int)
    deploy.add_argument("--target", choices=("local", "pool", "kubernetes"))
    deploy.add_argument("--pool")
    deploy.add_argument("--idempotency-key", help="the same key within 24 h answers the first creation")
    waiting(deploy, "every route has a ready replica", 600)

    verify = command("verify", cmd_verify, "check the audit trail's hash chain, or a version's artifact digest")
    verify.add_argument("--model")
    verify.add_argument("--version", type=int)
    return parser


def main(argv: Sequence[str] | None = None, *, stdout: TextIO | None = None, stderr: TextIO | None = None) -> int:
    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    args = build_parser().parse_args(argv)
    out = Output(as_json=args.json, stdout=stdout, stderr=stderr)
    try:
        return args.run(args, out)
    except ModelGateError as exc:
        out.error(exc)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
