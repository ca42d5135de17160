"""`reelscope process|status|result|cancel`: the API from a terminal."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TaskProgressColumn, TextColumn

from reelscope.settings import Settings

console = Console(stderr=True)


class ApiError(Exception):
    """The API answered with an error, or could not be reached; the message says which."""


class Api:
    def __init__(self, base_url: str, api_key: str | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(base_url=self.base_url, timeout=15, headers=headers)

    def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise ApiError(
                f"cannot reach the Reelscope API at {self.base_url} ({exc.__class__.__name__}); "
                "is `reelscope up` running? Point elsewhere with --api"
            ) from None

    def json(self, method: str, path: str, ok: tuple[int, ...] = (200,), **kwargs: Any) -> Any:
        response = self.call(method, path, **kwargs)
        if response.status_code not in ok:
            raise ApiError(_describe_error(response))
        return response.json()


def _describe_error(response: httpx.Response) -> str:
    try:
        detail = response.json().get("detail")
    except ValueError:
        detail = response.text
    if isinstance(detail, dict) and "message" in detail:
        return f"{detail.get('type', 'Error')}: {detail['message']}"
    if isinstance(detail, list):  # validation errors
        return "; ".join(f"{'.'.join(map(str, d.get('loc', [])))}: {d.get('msg')}" for d in detail)
    return f"HTTP {response.status_code}: {detail}"


def _stage_text(item: dict[str, Any]) -> str:
    if item["state"] != "running":
        extra = f" ({item['error']['type']})" if item.get("error") else ""
        cached = " (cached)" if item.get("cached") else ""
        return f"{item['state']}{extra}{cached}"
    running = [s for s in item.get("stages", []) if s["state"] == "running"]
    parts = []
    for stage in running:
        text = stage["stage"]
        if stage.get("detail"):
            text += f" {stage['detail']}"
        if stage.get("attempt") and stage["attempt"] > 1:
            text += f" [attempt {stage['attempt']}: {stage.get('last_failure') or ''}]"
        parts.append(text)
    return ", ".join(parts) or item["stage"]


def watch(api: Api, job_id: str) -> dict[str, Any]:
    """Live progress bars, one per item, until the job ends; returns the last status."""
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[stage]}"),
    )
    bars: dict[int, TaskID] = {}
    with Progress(*columns, console=console, transient=False) as progress:
        while True:
            status = api.json("GET", f"/v1/jobs/{job_id}")
            for item in status["items"]:
                link = item.get("media_url") or item["source_url"]
                name = unquote(link.rsplit("/", 1)[-1])[:40]
                label = f"item {item['index']} {item.get('kind') or ''} {name}"
                if item["index"] not in bars:
                    bars[item["index"]] = progress.add_task(label, total=100, stage="")
                progress.update(
                    bars[item["index"]],
                    description=label,
                    completed=item["progress"] * 100,
                    stage=_stage_text(item),
                )
            if status["state"] != "running":
                return dict(status)
            time.sleep(0.5)


def print_summary(result: dict[str, Any]) -> None:
    from reelscope.cli import print_result

    print_result(result)


def write_srt(api: Api, result: dict[str, Any]) -> None:
    """One item: SRT on stdout. Several: one file per item in the current folder."""
    with_speech = [
        i for i in result["items"] if i.get("transcript") and i["transcript"].get("segments")
    ]
    if not with_speech:
        raise ApiError("no item of this job has a transcript")
    job_id = result["job_id"]
    if len(result["items"]) == 1:
        sys.stdout.write(api.call("GET", f"/v1/jobs/{job_id}/items/0/transcript.srt").text)
        return
    for item in with_speech:
        path = Path(f"{job_id}-{item['index']}.srt")
        path.write_text(
            api.call("GET", f"/v1/jobs/{job_id}/items/{item['index']}/transcript.srt").text
        )
        console.print(f"wrote {path}")


def show_result(api: Api, job_id: str, args: argparse.Namespace) -> int:
    response = api.call("GET", f"/v1/jobs/{job_id}/result")
    if response.status_code == 409:
        console.print(f"job {job_id} is still running; `reelscope status {job_id}` shows where")
        return 3
    if response.status_code != 200:
        raise ApiError(_describe_error(response))
    result = response.json()
    if getattr(args, "json", False):
        print(json.dumps(result, indent=2))
    elif getattr(args, "srt", False):
        write_srt(api, result)
    else:
        print_summary(result)
    return 0 if result["state"] == "succeeded" else 1


#: API hosts whose worker runs on this machine, so that it can fetch what the CLI serves.
_LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def local_files(args: list[str], api_url: str) -> list[Path | None]:
    """For each argument, the file on this machine it names (None: it is a link). Raises
    ``ApiError`` for an argument that is neither, and for files where the API's worker
    would not be on this machine to fetch them."""
    found: list[Path | None] = []
    for arg in args:
        if "://" in arg:
            found.append(None)
            continue
        path = Path(arg).expanduser()
        if not path.is_file():
            raise ApiError(
                f"{arg!r} is neither a link (it needs http:// or https://) nor a file on "
                "this machine"
            )
        found.append(path)
    if any(found) and urlsplit(api_url).hostname not in _LOOPBACK_HOSTS:
        raise ApiError(
            f"{next(p for p in found if p)} is a file on this machine, and the API at "
            f"{api_url} is elsewhere: its workers cannot fetch files from here. Put the "
            "file where they can (a web server, object storage) and pass its link"
        )
    return found


def cmd_process(args: argparse.Namespace, api: Api) -> int:
    """Submit the links, files on this machine served to the worker as links of their
    own (network: a loopback HTTP server for as long as the command watches the job)."""
    files = local_files(args.urls, api.base_url)
    if not any(files):
        return _process(args, api, args.urls, [])
    from reelscope.cli import serve_files

    server, served = serve_files([f for f in files if f])
    links = iter(served)
    urls = [next(links) if f else url for url, f in zip(args.urls, files, strict=True)]
    if not args.wait:
        console.print("serving the local files until the job ends (as with --wait)")
        args.wait = True
    try:
        return _process(args, api, urls, served)
    finally:
        server.shutdown()
        server.server_close()


def _process(args: argparse.Namespace, api: Api, urls: list[str], served: list[str]) -> int:
    options: dict[str, Any] = {}
    if args.refresh:
        options["refresh"] = True
    if args.ocr_engine:
        options["ocr_engine"] = args.ocr_engine
    if args.whisper_model:
        options["whisper_model"] = args.whisper_model
    body: dict[str, Any] = {"urls": urls} if len(urls) > 1 else {"url": urls[0]}
    if options:
        body["options"] = options
    headers = {"Idempotency-Key": args.idempotency_key} if args.idempotency_key else {}
    accepted = api.json("POST", "/v1/jobs", ok=(202,), json=body, headers=headers)
    job_id = accepted["job_id"]
    console.print(f"submitted [bold]{job_id}[/bold]")
    if not args.wait:
        print(job_id)
        return 0
    try:
        status = watch(api, job_id)
    except KeyboardInterrupt:
        if args.cancel_on_interrupt:
            api.call("DELETE", f"/v1/jobs/{job_id}")
            console.print(f"\ncancelled {job_id}")
        else:
            console.print(
                f"\nstopped watching; {job_id} keeps running. "
                f"`reelscope status {job_id}`, `reelscope cancel {job_id}`"
                + ("; its local files are no longer served" if served else "")
            )
        return 130
    refused = [
        item
        for item in status["items"]
        if item["source_url"] in served and (item.get("error") or {}).get("type") == "UrlNotAllowed"
    ]
    if refused:
        console.print(
            "the worker does not fetch from this machine's loopback address, where the "
            "local files are served: start the stack with `reelscope up "
            "--allow-private-urls` (local use only) to process files"
        )
    return show_result(api, job_id, args)


def cmd_status(args: argparse.Namespace, api: Api) -> int:
    status = api.json("GET", f"/v1/jobs/{args.job_id}")
    if args.json:
        print(json.dumps(status, indent=2))
        return 0
    print(f"{status['job_id']}: {status['state']} ({status['progress']:.0%})")
    for item in status["items"]:
        print(
            f"  item {item['index']} [{item.get('kind') or '?'}] {item['progress']:4.0%}  "
            f"{_stage_text(item)}  {item.get('media_url') or item['source_url']}"
        )
        if item.get("error"):
            print(f"      {item['error']['type']}: {item['error']['message']}")
    return 0


def cmd_result(args: argparse.Namespace, api: Api) -> int:
    return show_result(api, args.job_id, args)


def cmd_cancel(args: argparse.Namespace, api: Api) -> int:
    response = api.call("DELETE", f"/v1/jobs/{args.job_id}")
    if response.status_code == 202:
        print(f"cancelling {args.job_id}")
        return 0
    if response.status_code == 409:
        print(f"{args.job_id} had already ended: {response.json()['state']}")
        return 0
    raise ApiError(_describe_error(response))


COMMANDS = {
    "process": cmd_process,
    "status": cmd_status,
    "result": cmd_result,
    "cancel": cmd_cancel,
}


def add_parsers(sub: Any) -> None:
    settings_default = Settings()
    default_api = f"http://{settings_default.api_host}:{settings_default.api_port}"

    def with_api(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
        parser.add_argument("--api", default=default_api, help=f"API base URL ({default_api}).")
        parser.add_argument(
            "--api-key",
            default=os.environ.get("REELSCOPE_API_KEY"),
            help="API key, when the server needs one (REELSCOPE_API_KEY).",
        )
        return parser

    def output(parser: argparse.ArgumentParser) -> None:
        group = parser.add_mutually_exclusive_group()
        group.add_argument("--json", action="store_true", help="Print the result as JSON.")
        group.add_argument("--srt", action="store_true", help="Print subtitles (SRT).")

    process = with_api(
        sub.add_parser("process", help="Submit links or files on this machine; --wait to watch.")
    )
    process.add_argument(
        "urls",
        nargs="+",
        metavar="URL",
        help="A link, or a file on this machine: served to a worker on this machine (a "
        "stack started with `reelscope up --allow-private-urls`) while the command runs.",
    )
    process.add_argument("--wait", action="store_true", help="Show progress, then the result.")
    process.add_argument(
        "--cancel-on-interrupt",
        action="store_true",
        help="With --wait: Ctrl-C cancels the job (default: it keeps going).",
    )
    process.add_argument("--refresh", action="store_true", help="Ignore cached results.")
    process.add_argument("--ocr-engine", choices=["paddleocr", "rapidocr"])
    process.add_argument("--whisper-model")
    process.add_argument("--idempotency-key")
    output(process)
    process.set_defaults(jobs_command="process")

    status = with_api(sub.add_parser("status", help="Where a job is."))
    status.add_argument("job_id")
    status.add_argument("--json", action="store_true")
    status.set_defaults(jobs_command="status")

    result = with_api(sub.add_parser("result", help="A finished job's result."))
    result.add_argument("job_id")
    output(result)
    result.set_defaults(jobs_command="result")

    cancel = with_api(sub.add_parser("cancel", help="Cancel a job."))
    cancel.add_argument("job_id")
    cancel.set_defaults(jobs_command="cancel")


def run(args: argparse.Namespace) -> int:
    api = Api(args.api, args.api_key)
    try:
        return COMMANDS[args.jobs_command](args, api)
    except ApiError as err:
        console.print(f"[red]error:[/red] {err}")
        return 2
