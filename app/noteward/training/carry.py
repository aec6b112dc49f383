"""Getting base models to a lent GPU in device calls of at most 64 MiB.

A device call carries the repository (about 12.6 MB) and at most 64 MiB in all, so the
base GGUFs travel in pieces, one call each (``installer/gpu_train.sh``):

- ``pack`` cuts the files to carry (SmolLM2's 98 MB GGUF, Gemma's slimmed one) as one byte
  stream into pieces that each fill a call; ``unpack`` joins them on the machine and checks
  every file's sha256.
- ``slim_gguf`` shrinks Gemma 3 270M (253 MB at Q4_K_M, two thirds of it the 262,144-row
  token embedding) to what training needs: the embedding rows of the tokens that never occur
  in the training set or the development prompts are zeroed in place (the file stays a valid
  GGUF with the whole tokenizer), and zeros compress to nothing. The job masks those tokens
  out of the output softmax (``vocab_mask``), so the model is trained and scored over the
  vocabulary of its data; the linear layers it trains are the base's, whole, and the adapter
  is merged into the untouched packaged GGUF here.

Needs numpy and gguf only (both travel to the GPU box).
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

EMBEDDING = "token_embd.weight"
PACK_FILE = "pack.json"


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def slim_gguf(base: Path, keep: Iterable[int], out: Path) -> dict[str, Any]:
    """Write ``base`` to ``out`` (a zip holding one GGUF) with the embedding rows not in ``keep`` zeroed.

    Zero bytes decode to zero in every GGML block format (the block scales are zero), so the
    rows read back as zeros. Returns {"file", "sha256" (of the GGUF inside), "kept", "rows"}.
    """
    import gguf
    import numpy as np

    reader = gguf.GGUFReader(base)
    emb = next((t for t in reader.tensors if t.name == EMBEDDING), None)
    if emb is None:
        raise ValueError(f"{base.name} has no {EMBEDDING} tensor")
    rows = int(emb.shape[-1]) if len(emb.shape) > 1 else 1  # GGUF shapes are innermost-first
    row_bytes = int(emb.n_bytes) // rows
    keep_ids = np.array(sorted({int(i) for i in keep if 0 <= int(i) < rows}), dtype=np.int64)
    drop = np.ones(rows, dtype=bool)
    drop[keep_ids] = False
    data = bytearray(base.read_bytes())
    start = int(emb.data_offset)
    block = (
        np.frombuffer(data, dtype=np.uint8, count=rows * row_bytes, offset=start)
        .reshape(rows, row_bytes)
        .copy()
    )
    block[drop] = 0
    data[start : start + rows * row_bytes] = block.tobytes()
    inner = base.name
    digest = hashlib.sha256(data).hexdigest()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as z:
        z.writestr(inner, bytes(data))
    tmp.replace(out)
    return {"file": inner, "sha256": digest, "kept": int(len(keep_ids)), "rows": rows}


def unslim(zip_path: Path, dest_dir: Path, expect_sha256: str) -> Path:
    """Extract the slimmed GGUF of ``slim_gguf`` into ``dest_dir``; ValueError on a hash mismatch."""
    with zipfile.ZipFile(zip_path) as z:
        (name,) = z.namelist()
        z.extract(name, dest_dir)
    path = dest_dir / name
    if sha256(path) != expect_sha256:
        raise ValueError(f"the unpacked {name} does not match its recorded sha256")
    return path


def pack(files: list[Path], folder: Path, piece_bytes: int) -> dict[str, Any]:
    """Cut ``files`` (as one stream) into ``folder/piece.NN`` of at most ``piece_bytes``; write pack.json."""
    folder.mkdir(parents=True, exist_ok=True)
    record: dict[str, Any] = {"files": [], "pieces": []}
    for f in files:
        record["files"].append({"name": f.name, "size": f.stat().st_size, "sha256": sha256(f)})
    n, used, out = 0, 0, None
    try:
        for f in files:
            with f.open("rb") as fh:
                while True:
                    if out is None or used >= piece_bytes:
                        if out is not None:
                            out.close()
                        name = f"piece.{n:02d}"
                        record["pieces"].append(name)
                        out = (folder / name).open("wb")
                        n, used = n + 1, 0
                    chunk = fh.read(min(1 << 20, piece_bytes - used))
                    if not chunk:
                        break
                    out.write(chunk)
                    used += len(chunk)
    finally:
        if out is not None:
            out.close()
    (folder / PACK_FILE).write_text(json.dumps(record, indent=2), encoding="utf-8")
    return record


def unpack(pieces_dir: Path, record: dict[str, Any], dest: Path) -> list[Path]:
    """Join the pieces found in ``pieces_dir`` back into the packed files under ``dest`` (hashes checked)."""
    missing = [p for p in record["pieces"] if not (pieces_dir / p).exists()]
    if missing:
        raise FileNotFoundError(
            f"pieces not on this machine: {', '.join(missing)} (run the stash calls first)"
        )
    dest.mkdir(parents=True, exist_ok=True)
    stream: Iterator[BinaryIO] = (open(pieces_dir / p, "rb") for p in record["pieces"])  # noqa: SIM115 - closed below
    current: BinaryIO = next(stream)
    out_paths: list[Path] = []
    try:
        for f in record["files"]:
            path = dest / f["name"]
            left = int(f["size"])
            with path.open("wb") as out:
                while left:
                    chunk = current.read(min(1 << 20, left))
                    if not chunk:
                        current.close()
                        following = next(stream, None)
                        if following is None:
                            raise ValueError(
                                f"the pieces end before {f['name']} is whole (a piece is short)"
                            )
                        current = following
                        continue
                    out.write(chunk)
                    left -= len(chunk)
            if sha256(path) != f["sha256"]:
                raise ValueError(f"the joined {f['name']} does not match its recorded sha256")
            out_paths.append(path)
    finally:
        current.close()
        for rest in stream:
            rest.close()
    return out_paths


def keep_ids(bundle: Path, base: Path) -> set[int]:
    """Tokens a prepared run can meet: its training set (turn tokens included), its development
    prompts, and BOS, EOS, padding and unknown."""
    import numpy as np

    from noteward.training import dev_eval, trainer

    keep = {int(i) for i in np.load(bundle / "encoded.npz")["ids"].tolist()}
    tok = trainer.load_tokenizer(base)
    for item in dev_eval.load_dev(bundle):
        prompt = tok.apply_chat_template(
            [{"role": "user", "content": item["prompt"]}],
            tokenize=False,
            add_generation_prompt=True,
        )
        keep.update(tok(str(prompt), add_special_tokens=False)["input_ids"])
    keep.update(
        i
        for i in (tok.bos_token_id, tok.eos_token_id, tok.pad_token_id, tok.unk_token_id)
        if i is not None
    )
    return keep


def main(argv: list[str] | None = None) -> int:
    """``slim BUNDLE BASE OUT.zip`` | ``pack FOLDER PIECE_BYTES FILE...`` | ``unpack PIECES PACK.json DEST``."""
    import sys

    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["slim"] and len(args) == 4:
        bundle, base, out = Path(args[1]), Path(args[2]), Path(args[3])
        info = slim_gguf(base, keep_ids(bundle, base), out)
        info["zip_bytes"] = out.stat().st_size
        info["base_sha256"] = sha256(base)
        print(json.dumps(info))
        return 0
    if args[:1] == ["pack"] and len(args) >= 4:
        print(json.dumps(pack([Path(a) for a in args[3:]], Path(args[1]), int(args[2]))))
        return 0
    if args[:1] == ["unpack"] and len(args) == 4:
        record = json.loads(Path(args[2]).read_text(encoding="utf-8"))
        for path in unpack(Path(args[1]), record, Path(args[3])):
            print(f"{path.name}: sha256 OK")
        return 0
    print(main.__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
