"""The preparation report: ``prepare_report.json`` (everything) and ``prepare_report.md`` (readable,
at most :data:`MD_ITEMS` items per problem kind; the JSON always has all of them).

Per list, ``annotated`` counts the well-formed entries with a known label (listed or not) and
``listed`` the lines written. Problem kinds, each item naming the split and the annotation ``file:line`` or the video path:

- ``malformed``: an annotation line that cannot be parsed (wrong number of fields, bad number ...);
- ``unknown_labels``: a well-formed line whose class is not in the class list, or whose label
  disagrees with its class folder (UCF101) -- left out, never given a guessed label;
- ``duplicates``: the same video twice in one split (the first line is kept);
- ``missing``: annotated, but no video / frame folder on disk;
- ``undecodable``: the file is there but nothing decodes (left out of the lists);
- ``truncated``: decoding stopped early or a frame folder has a gap (listed with the frames that
  decode);
- ``short``: fewer than ``--min-frames`` frames (listed unless ``--drop-short``).
"""
from __future__ import annotations

import datetime as _dt
import json
from dataclasses import asdict
from pathlib import Path

from ffn_core.config import atomic_write_text

__all__ = ["build_report", "write_reports", "PROBLEM_KINDS", "MD_ITEMS"]

PROBLEM_KINDS = ("malformed", "unknown_labels", "duplicates", "missing", "undecodable", "truncated", "short")
MD_ITEMS = 50


def build_report(preparer, root, out, ann, problems, found, lists, description, options, results) -> dict:
    from ffn_core import __version__

    all_problems = {
        "malformed": problems.malformed,
        "unknown_labels": problems.unknown_labels,
        "duplicates": problems.duplicates,
        **found,
    }
    splits = {}
    for name in ann.splits:
        row = {"annotated": sum(1 for e in ann.entries if e.split == name), "listed": len(lists[name])}
        for kind in PROBLEM_KINDS:
            row[kind] = sum(1 for item in all_problems[kind] if item.get("split") == name)
        splits[name] = row
    extraction = None
    if description["frames_extracted"]:
        ok = [r for r in results.values() if not r.error]
        extraction = {"videos": len(results), "new": sum(not r.reused for r in ok),
                      "reused": sum(r.reused for r in ok), "failed": len(results) - len(ok),
                      "frames_written_to": str(Path(out) / "frames"), "short_side": options.short_side}
    frame_counts = [r.num_frames for r in results.values() if not r.error]
    return {
        "dataset": preparer.name,
        "title": preparer.title,
        "root": str(root),
        "out": str(out),
        "created": _dt.datetime.now().isoformat(timespec="seconds"),
        "ffn_version": __version__,
        "options": asdict(options),
        "kind": description["kind"],
        "frames_extracted": description["frames_extracted"],
        "template": description["template"],
        "start_index": description["start_index"],
        "num_classes": description["num_classes"],
        "annotation_files": [str(s) for s in ann.sources],
        "media_root": str(ann.media_root),
        "lists": description["lists"],
        "aliases": {f"{a}.txt": f"{t}.txt" for a, t in ann.aliases.items()},
        "splits": splits,
        "frames_per_video": _stats(frame_counts),
        "extraction": extraction,
        "problems": all_problems,
        "notes": problems.notes,
        "clean": not any(all_problems[k] for k in PROBLEM_KINDS if k != "short"),
    }


def _stats(values: list) -> dict | None:
    if not values:
        return None
    s = sorted(values)
    return {"min": s[0], "median": s[len(s) // 2], "max": s[-1], "mean": round(sum(s) / len(s), 2)}


def write_reports(out: Path, report: dict) -> None:
    out = Path(out)
    atomic_write_text(out / "prepare_report.json", json.dumps(report, indent=2) + "\n")
    atomic_write_text(out / "prepare_report.md", render_markdown(report))


def _line(kind: str, item: dict) -> str:
    if kind == "malformed":
        shown = f" -- `{item['text']}`" if item["text"] else ""
        video = f" (video `{item['video']}`)" if item.get("video") else ""
        return f"`{item['where']}` ({item['split']}): {item['reason']}{video}{shown}"
    if kind == "unknown_labels":
        return f"`{item['where']}` ({item['split']}): video `{item['video']}` left out: label `{item['label']}` {item['reason']}"
    if kind == "duplicates":
        return f"`{item['where']}` ({item['split']}): `{item['key']}` already at `{item['first']}`"
    if kind == "missing":
        return f"`{item['where']}` ({item['split']}): `{item['key']}` not found (looked for `{item['expected']}`)"
    if kind == "undecodable":
        return f"`{item['source']}` ({item['split']}, `{item['where']}`): {item['error']}"
    if kind == "truncated":
        return f"`{item['path']}` ({item['split']}): {item['note']}"
    if kind == "short":
        verdict = "left out" if item["dropped"] else "listed"
        return f"`{item['path']}` ({item['split']}): {item['num_frames']} frames ({verdict})"
    return json.dumps(item)


_TITLES = {
    "malformed": "Malformed annotation lines",
    "unknown_labels": "Unknown or conflicting labels (left out)",
    "duplicates": "Duplicate entries (first kept)",
    "missing": "Missing videos (left out)",
    "undecodable": "Undecodable videos (left out)",
    "truncated": "Truncated videos (listed with the frames that decode)",
    "short": "Videos shorter than --min-frames",
}


def render_markdown(report: dict) -> str:
    opts = report["options"]
    media = (f"JPEG frame folders, template `{report['template']}`, first index {report['start_index']}"
             if report["kind"] == "frames" else "video files (decoded at training time)")
    lines = [
        f"# Preparation report: {report['title']} (`{report['dataset']}`)",
        "",
        f"- root: `{report['root']}`",
        f"- out (the `data_root`): `{report['out']}`",
        f"- created: {report['created']} (ffn {report['ffn_version']})",
        f"- lists point at: {media}" + (" -- **frames extracted by this run**" if report["frames_extracted"] else ""),
        f"- classes: {report['num_classes']} (`classes.txt`)",
        f"- min frames: {opts['min_frames']} ({'short videos left out' if opts['drop_short'] else 'short videos kept'})",
        f"- status: {'clean' if report['clean'] else '**problems found, see below**'}",
        "",
        "| list | annotated | listed | " + " | ".join(PROBLEM_KINDS) + " |",
        "|---|" + "---|" * (2 + len(PROBLEM_KINDS)),
    ]
    for name, row in report["splits"].items():
        lines.append(f"| `{name}.txt` | {row['annotated']} | {row['listed']} | "
                     + " | ".join(str(row[k]) for k in PROBLEM_KINDS) + " |")
    for alias, target in report["aliases"].items():
        lines.append(f"\n`{alias}` is a copy of `{target}`.")
    if report["frames_per_video"]:
        s = report["frames_per_video"]
        lines += ["", f"Frames per video: min {s['min']}, median {s['median']}, mean {s['mean']}, max {s['max']}."]
    if report["extraction"]:
        x = report["extraction"]
        lines += ["", f"Extraction: {x['new']} videos extracted now, {x['reused']} reused from an earlier run, "
                      f"{x['failed']} failed; short side {x['short_side']} px, into `{x['frames_written_to']}`."]
    if report["notes"]:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in report["notes"]]
    for kind in PROBLEM_KINDS:
        items = report["problems"][kind]
        if not items:
            continue
        lines += ["", f"## {_TITLES[kind]}: {len(items)}", ""]
        lines += [f"- {_line(kind, it)}" for it in items[:MD_ITEMS]]
        if len(items) > MD_ITEMS:
            lines.append(f"- ... and {len(items) - MD_ITEMS} more (all in `prepare_report.json`)")
    return "\n".join(lines) + "\n"
