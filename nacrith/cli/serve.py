"""`nacrith serve`: the REST service, on worker processes here or on Ray Serve."""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from nacrith.cli.common import EXIT_DATA, EXIT_OK, UsageError
from nacrith.cli.options import Subcommands, _positive_int, _size
from nacrith.server.settings import DEFAULT_MAX_BODY, JOBS_PER_WORKER

if TYPE_CHECKING:
    from nacrith.server import ServerSettings


def _add_serve(sub: Subcommands, parents: list[argparse.ArgumentParser]) -> None:
    from nacrith.server.settings import DEFAULT_BODY_TIMEOUT, MIN_UPLOAD_RATE, UPLOADS_PER_PLACE

    srv = sub.add_parser(
        "serve",
        parents=parents,
        help="run the REST service (POST /compress, POST /decompress)",
        description="Serve compression over HTTP. Set NACRITH_API_KEY to require that key in "
        "the X-API-Key header. OpenAPI docs at /docs.",
    )
    srv.add_argument("--host", default="127.0.0.1", help="address to listen on (default %(default)s)")
    # Checked by cmd_serve, not argparse, so that a bad port is one line like every other refusal.
    srv.add_argument("--port", default="8000", help="port to listen on (default %(default)s)")
    srv.add_argument(
        "--max-body",
        type=_size,
        default=DEFAULT_MAX_BODY,
        metavar="BYTES",
        help="largest request body, K/M/G suffixes allowed; larger ones get 413 (default 64M)",
    )
    srv.add_argument(
        "--queue",
        type=_positive_int,
        metavar="N",
        help=f"requests admitted at once; more get 503 (default {JOBS_PER_WORKER} per worker)",
    )
    srv.add_argument(
        "--body-timeout",
        type=float,
        default=DEFAULT_BODY_TIMEOUT,
        metavar="SECONDS",
        help="answer 408 to an upload that sends nothing for this long, or later averages under "
        f"{MIN_UPLOAD_RATE >> 10} KiB/s (default %(default)g)",
    )
    srv.add_argument(
        "--max-uploads",
        type=_positive_int,
        metavar="N",
        help=f"request bodies received at once; more get 503 (default {UPLOADS_PER_PLACE} per place "
        "in the queue)",
    )
    srv.add_argument(
        "--spool-dir", metavar="DIR", help="where uploads and results are spooled (default: $TMPDIR)"
    )
    srv.add_argument(
        "--dict",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="a dictionary (nacrith dict build) for POST /compress?dict=NAME; /decompress finds a "
        "file's by its fingerprint; repeatable",
    )
    ray_opts = srv.add_argument_group(
        "Ray Serve (--backend ray; needs pip install 'nacrith[ray]')",
        "The model runs in the replicas of a Ray Serve deployment, --workers of them, behind the same API.",
    )
    ray_opts.add_argument(
        "--backend",
        choices=("local", "ray"),
        default="local",
        help="local: worker processes on this machine (default); ray: replicas on a Ray cluster",
    )
    ray_opts.add_argument(
        "--address", metavar="ADDR", help="the Ray cluster, e.g. auto or HOST:6379 (default: start one here)"
    )
    ray_opts.add_argument(
        "--max-workers",
        type=_positive_int,
        metavar="N",
        help="let Serve autoscale the replicas between --workers and N",
    )
    ray_opts.add_argument("--gpu-replicas", action="store_true", help="each replica holds one GPU")
    ray_opts.add_argument(
        "--accelerator-type",
        metavar="TYPE",
        help="pin GPU replicas to this Ray accelerator type (e.g. H100): decode on the type that encoded",
    )


def _named_dicts(items: list[str]) -> list[tuple[str, str]]:
    out = []
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise UsageError(f"--dict takes NAME=PATH, not {item!r}")
        out.append((name, path))
    return out


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn  # only the service needs the HTTP stack

    from nacrith.models.llm import resolve_model_path
    from nacrith.server import ServerSettings, create_app
    from nacrith.server.runner import Server, listen, parse_port

    try:
        port = parse_port(args.port)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    resolve_model_path(args.model)  # a missing model is a one-line error now, not a server never ready
    if args.spool_dir is not None and not Path(args.spool_dir).is_dir():
        raise UsageError(f"--spool-dir {args.spool_dir}: not a directory")
    try:
        settings = ServerSettings.from_env(
            model=args.model,
            workers=args.workers or max(1, len(args.gpus)),
            gpus=args.gpus,
            threads=args.threads,
            max_body=args.max_body,
            queue=args.queue,
            body_timeout=args.body_timeout,
            max_uploads=args.max_uploads,
            spool_dir=args.spool_dir,
            dicts=tuple(_named_dicts(args.dict)),
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    # The service's own messages, in uvicorn's format beside its lines.
    logging.basicConfig(level=logging.INFO, format="%(levelname)-9s %(message)s")
    if args.backend == "ray":
        return _serve_on_ray(args, settings, port)
    if args.address or args.max_workers or args.gpu_replicas or args.accelerator_type:
        raise UsageError("--address, --max-workers, --gpu-replicas and --accelerator-type need --backend ray")
    # Bound before anything starts: a port in use is one line and exit 1, before any worker loads.
    sock = listen(args.host, port)
    app = create_app(settings)
    server = Server(uvicorn.Config(app, host=args.host, port=port, log_level="info"))
    service = app.state.service
    service.on_load_failure = lambda: setattr(server, "should_exit", True)
    try:
        server.run(sockets=[sock])
    except SystemExit:  # uvicorn's own "cannot start" (it has logged why)
        return EXIT_DATA
    finally:
        service.close()  # the workers stop on every way out, a forced one included
        sock.close()
    if service.load_error:
        print(f"nacrith: cannot start the workers: {service.load_error}", file=sys.stderr)
        return EXIT_DATA
    if server.interrupted:
        raise KeyboardInterrupt  # "interrupted", 130, as for any other command
    return EXIT_OK if server.started else EXIT_DATA


def _serve_on_ray(args: argparse.Namespace, settings: ServerSettings, port: int) -> int:
    if args.gpus:
        raise UsageError(
            "with --backend ray, Ray places the replicas on GPUs: use --gpu-replicas, not --gpus"
        )
    try:
        from nacrith.server.ray_backend import RaySettings, run
    except ImportError:
        raise UsageError("--backend ray needs Ray Serve: pip install 'nacrith[ray]'") from None
    try:
        layout = RaySettings(
            replicas=settings.workers,
            max_replicas=args.max_workers,
            gpu=args.gpu_replicas,
            accelerator_type=args.accelerator_type,
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    with contextlib.suppress(KeyboardInterrupt):
        run(settings, layout, args.address, args.host, port)
    return EXIT_OK
