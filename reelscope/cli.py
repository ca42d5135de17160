"""The `reelscope` command.

- ``reelscope up [--demo]``: the embedded stack (Temporal dev server + UI, worker, API).
- ``reelscope api``: the API alone, against any Temporal (``REELSCOPE_TEMPORAL_ADDRESS``).
- ``reelscope worker``: a worker alone (same as ``python worker.py``).
- ``reelscope process URL [URL...] [--wait] [--json|--srt]``: submit through the API.
- ``reelscope status JOB`` / ``result JOB`` / ``cancel JOB``.
- ``reelscope sample PATH``: write the bundled sample video.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import http.server
import json
import os
import signal
import sys
import threading
import time
import urllib.parse
from pathlib import Path
from typing import Any

import httpx

from api.security import load_key_digests
from reelscope.settings import Settings
from reelscope.stack import Stack, StackError


def _settings_from(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {
        key: value
        for key, value in {
            "api_port": getattr(args, "api_port", None),
            "temporal_port": getattr(args, "temporal_port", None),
            "ui_port": getattr(args, "ui_port", None),
            "data_dir": getattr(args, "data_dir", None),
            "allow_private_urls": True if getattr(args, "allow_private_urls", False) else None,
        }.items()
        if value is not None
    }
    return Settings(**overrides)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


class _QuietServer(http.server.ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hangs up early (yt-dlp reads headers, then closes) is normal.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class _FilesHandler(_QuietHandler):
    """Serves the files in ``server.files`` (URL path → file) and answers 404 to any
    other path: nothing else of the folders they are in is reachable."""

    server: _FilesServer

    def translate_path(self, path: str) -> str:
        found = self.server.files.get(urllib.parse.urlsplit(path).path)
        # A path in no folder, so that the handler answers 404.
        return str(found) if found is not None else "/nonexistent/reelscope"


class _FilesServer(_QuietServer):
    files: dict[str, Path]


def serve_files(files: list[Path]) -> tuple[http.server.ThreadingHTTPServer, list[str]]:
    """Serve ``files``, and only them, on a free loopback port, in a daemon thread
    (network: loopback); returns the server and each file's URL, in order. Each URL
    ends with the file's name, which becomes the item's title, after a token of the
    file's path, size and time of change: results are cached by link, and a file changed
    since, served again on a port used before, must not get the old one."""
    server = _FilesServer(("127.0.0.1", 0), _FilesHandler)
    server.files = {}
    url_paths = []
    for path in (f.resolve() for f in files):
        facts = path.stat()
        token = hashlib.sha256(f"{path}|{facts.st_size}|{facts.st_mtime_ns}".encode()).hexdigest()
        url_paths.append(f"/{token[:16]}/{urllib.parse.quote(path.name)}")
        server.files[url_paths[-1]] = path
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    return server, [base + url_path for url_path in url_paths]


def serve_folder(folder: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    """Serve ``folder`` on a free loopback port, in a daemon thread (network: loopback)."""
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = _QuietServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def _format_status(status: dict[str, Any]) -> str:
    parts = []
    for item in status["items"]:
        running = [s for s in item["stages"] if s["state"] == "running"]
        stages = (
            ", ".join(
                f"{s['stage']} {s['progress']:.0%}"
                + (f" ({s['detail']})" if s.get("detail") else "")
                for s in running
            )
            or item["stage"]
        )
        parts.append(f"item {item['index']}: {item['state']} · {stages}")
    return f"[{status['progress']:4.0%}] {status['state']} · " + " | ".join(parts)


def print_result(result: dict[str, Any]) -> None:
    print(f"\nResult of {result['job_id']}: {result['state']}")
    for item in result["items"]:
        print(f"\n  item {item['index']}  {item['source_url']}  [{item['state']}]")
        if item.get("error"):
            print(f"    error {item['error']['type']}: {item['error']['message']}")
        meta = item.get("metadata")
        if item.get("cached"):
            print("    (served from the result cache)")
        if meta and item.get("kind") == "image":
            moving = f", animated, {meta['duration_s']} s" if meta.get("duration_s") else ""
            codec = meta.get("video_codec") or ""
            print(f"    image {meta['width']}x{meta['height']} {codec}{moving}")
            text = "; ".join(f'"{t["text"]}"' for t in item.get("text", [])) or "-"
            print(f"    text: {text}")
        elif meta and meta.get("width"):
            print(
                f"    {meta['duration_s']} s, {meta['width']}x{meta['height']} @ {meta['fps']} fps,"
                f" video {meta['video_codec']}, audio {meta['audio_codec'] or '-'}"
            )
        elif meta:
            print(f"    {meta['duration_s']} s, audio only, {meta['audio_codec']}")
        if item.get("scenes"):
            print(f"    {len(item['scenes'])} scenes:")
            for scene in item["scenes"]:
                text = "; ".join(f'"{t["text"]}"' for t in scene["text"]) or "-"
                print(
                    f"      #{scene['index']}  {scene['start_s']:7.2f}-{scene['end_s']:7.2f} s"
                    f"  frames {scene['start_frame']}-{scene['end_frame']}  text: {text}"
                )
        transcript = item.get("transcript")
        if transcript:
            said = transcript["text"] or f"({transcript.get('note')})"
            print(f"    transcript [{transcript.get('language')}]: {said}")
        for note in item.get("notes", []):
            print(f"    note: {note}")


def run_demo(stack: Stack) -> bool:
    """Process the bundled sample through the API and print its result."""
    from reelscope.sample import make_sample

    folder = stack.data_dir / "sample"
    video = folder / "reelscope-sample.mp4"
    if not video.exists():
        print("  rendering the bundled sample video ...")
        make_sample(video)
    server, base = serve_folder(folder)
    try:
        url = f"{base}/{video.name}"
        print(f'\nSubmitting the sample: POST {stack.api_url}/v1/jobs {{"url": "{url}"}}')
        key = os.environ.get("REELSCOPE_API_KEY")
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        if load_key_digests(stack.settings) and not key:
            print("  auth is on: set REELSCOPE_API_KEY to one of the configured keys for the demo")
            return False
        with httpx.Client(base_url=stack.api_url, timeout=10, headers=headers) as api:
            accepted = api.post("/v1/jobs", json={"url": url})
            accepted.raise_for_status()
            job_id = accepted.json()["job_id"]
            print(f"  job {job_id}; watch it live at {stack.job_ui_url(job_id)}")
            started, last = time.monotonic(), ""
            while True:
                status = api.get(f"/v1/jobs/{job_id}").json()
                line = _format_status(status)
                if line != last:
                    print(f"  {line}")
                    last = line
                if status["state"] != "running":
                    break
                if time.monotonic() - started > 600:
                    print(
                        "  the sample did not finish in 10 minutes; see the logs in "
                        f"{stack.logs_dir}"
                    )
                    return False
                time.sleep(0.5)
            result = api.get(f"/v1/jobs/{job_id}/result").json()
        saved = folder / "result.json"
        saved.write_text(json.dumps(result, indent=2))
        print_result(result)
        print(f"\n  took {time.monotonic() - started:.1f} s end to end")
        print(f"  full JSON:   {stack.api_url}/v1/jobs/{job_id}/result  (also {saved})")
        print(f"  Web UI:      {stack.job_ui_url(job_id)}")
        print(
            f"  CLI query:   temporal workflow query --address 127.0.0.1:"
            f"{stack.settings.temporal_port} --workflow-id {job_id} --name progress"
        )
        return bool(result["state"] == "succeeded")
    finally:
        server.shutdown()


def cmd_up(args: argparse.Namespace) -> int:
    if args.demo:
        args.allow_private_urls = True  # the sample is served on loopback
    settings = _settings_from(args)
    stack = Stack(settings)
    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    print(f"Reelscope: starting the embedded stack (data in {stack.data_dir})")
    code = 0
    try:
        stack.start()
        print(
            "\nReelscope is up:\n"
            f"  API          {stack.api_url}\n"
            f"  API docs     {stack.api_url}/docs\n"
            f"  Temporal UI  {stack.ui_url}\n"
            f"  Temporal     127.0.0.1:{settings.temporal_port} (namespace "
            f"{settings.temporal_namespace})\n"
            f"  Logs         {stack.logs_dir}/{{temporal,worker,api}}.log\n"
            + (
                "  Fetching     private and loopback addresses ALLOWED (--allow-private-urls;"
                " local use only)\n"
                if settings.allow_private_urls
                else "  Fetching     public addresses only\n"
            )
            + (
                f"  Auth         on: API keys required ({len(load_key_digests(settings))} "
                "configured)\n"
                if load_key_digests(settings)
                else "  Auth         off: no API keys configured (REELSCOPE_API_KEYS)\n"
            )
        )
        if args.demo:
            ok = run_demo(stack)
            code = 0 if ok else 1
            if args.exit_after_demo:
                return code
        print("\nPress Ctrl-C to stop.")
        while not stop.is_set():
            dead = stack.dead_child()
            if dead is not None:
                print(
                    f"\n{dead.name} stopped unexpectedly; its log ({dead.log_path}) ends:\n"
                    f"{dead.log_tail()}",
                    file=sys.stderr,
                )
                return 1
            stop.wait(0.5)
        print("\nStopping ...")
        return code
    except StackError as err:
        print(f"\nCould not start the stack: {err}", file=sys.stderr)
        return 1
    finally:
        stack.stop()
        print("Stopped: API, worker and Temporal dev server.")


def cmd_api(args: argparse.Namespace) -> int:
    import uvicorn

    from api.main import create_app
    from reelscope.logs import configure_logging

    settings = _settings_from(args)
    configure_logging(settings.log_format, settings.log_level)
    uvicorn.run(
        create_app(settings), host=settings.api_host, port=settings.api_port, log_level="warning"
    )
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    import worker

    sys.argv = [sys.argv[0]]
    if args.ready_file:
        sys.argv += ["--ready-file", str(args.ready_file)]
    worker.main()
    return 0


def cmd_hash_key(args: argparse.Namespace) -> int:
    import secrets

    from api.security import hash_key

    key = args.key or secrets.token_urlsafe(32)
    if not args.key:
        print(f"key:    {key}   (give this to the client; it is not stored)")
    print(f"digest: {hash_key(key)}   (put this in REELSCOPE_API_KEYS or the keys file)")
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    from reelscope.sample import make_sample

    print(make_sample(Path(args.path)))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="reelscope", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", help="Run Temporal dev server + UI, a worker and the API.")
    up.add_argument("--api-port", type=int, help="API port (REELSCOPE_API_PORT, 8000).")
    up.add_argument(
        "--temporal-port", type=int, help="Temporal frontend port (REELSCOPE_TEMPORAL_PORT, 7233)."
    )
    up.add_argument("--ui-port", type=int, help="Temporal Web UI port (REELSCOPE_UI_PORT, 8233).")
    up.add_argument(
        "--data-dir",
        type=Path,
        help="SQLite, workspaces and logs (REELSCOPE_DATA_DIR, ./.reelscope).",
    )
    up.add_argument(
        "--demo",
        action="store_true",
        help="Process the bundled sample video and print its result "
        "(implies --allow-private-urls: the sample is served on loopback).",
    )
    up.add_argument(
        "--allow-private-urls",
        action="store_true",
        help="Let workers fetch loopback and private addresses, e.g. files served on "
        "localhost (REELSCOPE_ALLOW_PRIVATE_URLS). Never on a shared server.",
    )
    up.add_argument(
        "--exit-after-demo",
        action="store_true",
        help="With --demo: stop the stack once the sample is done.",
    )
    up.set_defaults(func=cmd_up)

    api = sub.add_parser("api", help="Run the API alone.")
    api.add_argument("--api-port", type=int)
    api.set_defaults(func=cmd_api)

    worker = sub.add_parser("worker", help="Run a worker alone.")
    worker.add_argument(
        "--ready-file", type=Path, help="Written once the worker polls (for health checks)."
    )
    worker.set_defaults(func=cmd_worker)

    from reelscope import jobs_cli

    jobs_cli.add_parsers(sub)
    for name in jobs_cli.COMMANDS:
        sub.choices[name].set_defaults(func=jobs_cli.run)

    hash_key = sub.add_parser("hash-key", help="Make an API key and the digest to configure.")
    hash_key.add_argument("key", nargs="?", help="An existing key (default: make a new one).")
    hash_key.set_defaults(func=cmd_hash_key)

    sample = sub.add_parser("sample", help="Write the bundled sample video.")
    sample.add_argument("path")
    sample.set_defaults(func=cmd_sample)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except BrokenPipeError:
        # The reader went away (`reelscope result JOB | head`): stop quietly.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    return code


if __name__ == "__main__":
    sys.exit(main())
