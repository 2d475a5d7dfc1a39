"""`swarmnode vsearch`: its arguments, its call and its rendering, for `swarmnode/cli.py`.

swarmnode vsearch notes "where did we leave the deploy?"      # text (embedder namespace)
swarmnode vsearch docs --vector '[0.1, 0.2, 0.3]' -k 5
swarmnode vsearch docs --vector 0.1,0.2,0.3 -k 5                # the same, shell-friendly
swarmnode vsearch docs --key memo-17 --filter '{"topic": "infra"}'
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from swarmnode.errors import BadRequest


def add_vsearch_arguments(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("ns")
    sp.add_argument("text", nargs="?", help="query text (the namespace must name an embedder)")
    sp.add_argument("--vector", help=VECTOR_HELP.replace("embedding", "query vector"))
    sp.add_argument("--key", help="use the vector of this entry as the query")
    sp.add_argument("-k", type=int, default=10, help="how many results (default 10)")
    sp.add_argument("--filter", help='metadata filter as JSON, e.g. {"tag": {"$in": ["a","b"]}}')
    sp.add_argument("--ef", type=int, help="HNSW search beam (recall against speed)")
    sp.add_argument("--embedder", help="the model a --vector was made with (embedder namespaces)")


VECTOR_HELP = "embedding as a JSON list of numbers, or numbers separated by commas"


def parse_vector(text: str | None) -> Any:
    """A `--vector`: a JSON list (`[0.1, 0.2]`) or bare comma-separated numbers (`0.1,0.2`).

    Anything else is passed on as parsed, so the node's own check of the
    vector (numbers, finite, the namespace's dimension) gives the error.
    """
    if text is None:
        return None
    stripped = text.strip()
    if stripped and stripped[0] not in "[{":
        try:
            return [float(part) for part in stripped.split(",")]
        except ValueError:
            raise BadRequest(
                f"--vector: {text!r} is neither a JSON list nor numbers separated by commas"
            ) from None
    return parse_json(text, "--vector")


def parse_json(text: str | None, what: str) -> Any:
    """A JSON command-line argument; a parse error is the user's `bad_request`."""
    if text is None:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadRequest(f"{what}: not valid JSON: {exc}") from None


def run_vsearch(client: Any, args: argparse.Namespace) -> dict[str, Any]:
    """Call `vsearch` with the command line's arguments (exactly one of text, --vector, --key)."""
    opts = {
        "text": args.text,
        "vector": parse_vector(args.vector),
        "key": args.key,
        "filter": parse_json(args.filter, "--filter"),
        "ef": args.ef,
        "embedder": args.embedder,
    }
    return client.call(
        "vsearch", ns=args.ns, k=args.k, **{k: v for k, v in opts.items() if v is not None}
    )


def _short(value: Any, width: int = 60) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=repr)
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def render_vsearch(r: dict[str, Any]) -> str:
    if not r["items"]:
        return "(no matches)"
    rows = [
        [
            str(rank),
            f"{item['score']:.4f}",
            item["key"] + (" (conflict)" if item.get("conflict") else ""),
            _short(item["value"]),
            _short(item["meta"] or "", 40),
        ]
        for rank, item in enumerate(r["items"], 1)
    ]
    header = ["#", "SCORE", "KEY", "VALUE", "META"]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        for row in [header, *rows]
    ]
    how = "exact" if r.get("exact") else "hnsw"
    lines.append(f"# {r['metric']}: {r['better']} is better ({how} search)")
    if any(item.get("conflict") for item in r["items"]):
        lines.append("# (conflict): concurrent values; `swarmnode get` shows them all")
    return "\n".join(lines)
