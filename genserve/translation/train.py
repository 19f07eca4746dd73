"""``genserve models train translation``: the demo English-French MarianMT.

Generates the corpus, trains a joint sentencepiece BPE (pad 0, eos 1, unk 2; the Marian
vocab.json maps pieces to the same ids), then trains a small MarianMTModel with label
smoothing. Writes a Hugging Face Marian folder (config, generation config, safetensors
weights in float16, source.spm, target.spm, vocab.json) plus genserve.json. Fixed seeds,
fixed thread count, a progress bar, checkpoints as it goes.
"""

from __future__ import annotations

import json
import math
import random
import shutil
import tempfile
from pathlib import Path
from typing import Any

from genserve.artifacts import write_manifest
from genserve.train import Checkpoints
from genserve.translation.corpus import generate

DEFAULT_RECIPE: dict[str, Any] = {
    "seed": 0,
    "corpus_pairs": 100_000,
    "vocab_size": 2000,
    "d_model": 256,
    "layers": 3,
    "heads": 4,
    "ffn": 1024,
    "steps": 3600,
    "batch_size": 128,
    "lr": 7e-4,
    "warmup": 400,
    "label_smoothing": 0.1,
    "threads": 2,
    # Phase 2, guided alignment: the last decoder layer's cross-attention (heads averaged)
    # at the step that writes il/elle is taught to point at the noun the pronoun refers to.
    "align_steps": 600,
    "align_lr": 1e-4,
    "align_weight": 1.0,
    "eval_pairs": 300,
}
HF_FILES = [
    "config.json",
    "generation_config.json",
    "model.safetensors",
    "source.spm",
    "target.spm",
    "vocab.json",
    "tokenizer_config.json",
]


def train_tokenizer(out: Path, sentences: list[str], vocab_size: int) -> Any:
    """Joint BPE for both languages; returns the loaded SentencePieceProcessor."""
    import sentencepiece as spm

    with tempfile.TemporaryDirectory() as tmp:
        text = Path(tmp) / "text.txt"
        text.write_text("\n".join(sentences) + "\n")
        spm.SentencePieceTrainer.train(
            input=str(text),
            model_prefix=str(Path(tmp) / "spm"),
            vocab_size=vocab_size,
            model_type="bpe",
            character_coverage=1.0,
            pad_id=0,
            eos_id=1,
            unk_id=2,
            bos_id=-1,
            pad_piece="<pad>",
            eos_piece="</s>",
            unk_piece="<unk>",
            num_threads=2,
            minloglevel=2,
        )
        for name in ("source.spm", "target.spm"):
            shutil.copy(Path(tmp) / "spm.model", out / name)
    sp = spm.SentencePieceProcessor(model_file=str(out / "source.spm"))
    vocab = {sp.id_to_piece(i): i for i in range(sp.get_piece_size())}
    (out / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False, indent=0))
    (out / "tokenizer_config.json").write_text(
        json.dumps(
            {
                "tokenizer_class": "MarianTokenizer",
                "source_lang": "en",
                "target_lang": "fr",
                "model_max_length": 512,
                "pad_token": "<pad>",
                "eos_token": "</s>",
                "unk_token": "<unk>",
            },
            indent=2,
        )
    )
    return sp


def build_model(recipe: dict[str, Any], *, pad_id: int = 0, eos_id: int = 1) -> Any:
    """A random-weight MarianMTModel of the recipe's dimensions. The demo puts pad at 0
    and eos at 1; opus-mt checkpoints put eos at 0 and pad last."""
    from transformers import MarianConfig, MarianMTModel

    config = MarianConfig(
        vocab_size=recipe["vocab_size"],
        decoder_vocab_size=recipe["vocab_size"],
        d_model=recipe["d_model"],
        encoder_layers=recipe["layers"],
        decoder_layers=recipe["layers"],
        encoder_attention_heads=recipe["heads"],
        decoder_attention_heads=recipe["heads"],
        encoder_ffn_dim=recipe["ffn"],
        decoder_ffn_dim=recipe["ffn"],
        max_position_embeddings=512,
        activation_function="swish",
        scale_embedding=True,
        share_encoder_decoder_embeddings=True,
        pad_token_id=pad_id,
        eos_token_id=eos_id,
        decoder_start_token_id=pad_id,
        forced_eos_token_id=eos_id,
        dropout=0.1,
        attention_dropout=0.0,
        activation_dropout=0.0,
    )
    return MarianMTModel(config)


def _batches(
    rng: random.Random, src: list[list[int]], tgt: list[list[int]], size: int
) -> list[list[int]]:
    """Index batches of similar source length (less padding), in shuffled order."""
    order = sorted(range(len(src)), key=lambda i: (len(src[i]), rng.random()))
    batches = [order[i : i + size] for i in range(0, len(order), size)]
    rng.shuffle(batches)
    return batches


def _forward(
    model: Any,
    src: list[list[int]],
    tgt: list[list[int]],
    idx: list[int],
    smoothing: float,
    *,
    attentions: bool = False,
) -> tuple[Any, Any]:
    """Teacher-forced forward pass of one batch: (label-smoothed cross-entropy, outputs)."""
    import torch.nn.functional as F

    pad = 0
    input_ids = _pad([src[i] for i in idx], pad)
    labels = _pad([tgt[i] for i in idx], -100)
    decoder_input = _pad([[0, *tgt[i][:-1]] for i in idx], pad)
    out = model(
        input_ids=input_ids,
        attention_mask=(input_ids != pad).long(),
        decoder_input_ids=decoder_input,
        output_attentions=attentions,
    )
    logits = out.logits
    loss = F.cross_entropy(
        logits.reshape(-1, logits.shape[-1]),
        labels.reshape(-1),
        ignore_index=-100,
        label_smoothing=smoothing,
    )
    return loss, out


def _pad(rows: list[list[int]], value: int) -> Any:
    import torch

    width = max(len(r) for r in rows)
    return torch.tensor([r + [value] * (width - len(r)) for r in rows])


def train(
    out: Path,
    *,
    progress: bool = True,
    resume: bool = False,
    checkpoint_every: int = 400,
    **overrides: Any,
) -> dict[str, Any]:
    """Train into ``out``; ``resume``: continue the run that saved ``out/train-state.pt``
    (``genserve.train``). Returns a summary with held-out BLEU of greedy decoding."""
    import torch

    recipe = {**DEFAULT_RECIPE, **overrides}
    random.seed(recipe["seed"])
    torch.manual_seed(recipe["seed"])
    torch.set_num_threads(recipe["threads"])
    rng = random.Random(recipe["seed"])
    out.mkdir(parents=True, exist_ok=True)

    corpus = generate(recipe["seed"], n_train=recipe["corpus_pairs"])
    sp = train_tokenizer(
        out, [p.en for p in corpus.train] + [p.fr for p in corpus.train], recipe["vocab_size"]
    )
    eos = 1
    src = [[*ids, eos] for ids in sp.encode([p.en for p in corpus.train])]
    tgt = [[*ids, eos] for ids in sp.encode([p.fr for p in corpus.train])]

    model = build_model(recipe)
    model.train()
    opt = torch.optim.AdamW(
        model.parameters(), lr=recipe["lr"], betas=(0.9, 0.98), eps=1e-9, weight_decay=0.0
    )
    warmup = recipe["warmup"]

    def lr_at(step: int) -> float:
        return recipe["lr"] * min((step + 1) / warmup, math.sqrt(warmup / (step + 1)))

    def checkpoint() -> None:
        model.eval()
        model.to(torch.float16).save_pretrained(out, safe_serialization=True)
        model.to(torch.float32).train()

    align = Alignment(model, recipe)
    batches: list[list[int]] = []
    parts = dict(model=model, opt=opt, rng=rng, batches=batches, **align.parts())
    checkpoints = Checkpoints(
        out, recipe, parts, ("main", "align"), every=checkpoint_every, resume=resume
    )
    bar = checkpoints.loop(
        "main", recipe["steps"], progress=progress, desc="train translation", unit="step"
    )
    for step in bar:
        if not batches:
            batches.extend(_batches(rng, src, tgt, recipe["batch_size"]))
        idx = batches.pop()
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        loss, _ = _forward(model, src, tgt, idx, recipe["label_smoothing"])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % 20 == 0:
            bar.set_postfix(loss=f"{loss.item():.3f}")
        if checkpoints.due(step):
            checkpoint()
            checkpoints.save("main", step)
    if not checkpoints.finished("main"):  # (a resumed run's weights are already past it)
        checkpoint()
    align.run(corpus, sp, checkpoints, progress=progress)
    checkpoint()
    checkpoints.finish()
    seconds = checkpoints.seconds()
    write_hf_extras(out)

    bleu = heldout_bleu(out, corpus.heldout[: recipe["eval_pairs"]])
    recipe.update(
        train_seconds=round(seconds, 1),
        torch=torch.__version__,
        heldout_bleu_300_greedy=round(bleu, 2),
    )
    write_manifest(
        out,
        kind="translation",
        name="demo-en-fr",
        files=HF_FILES,
        config={"source_lang": "en", "target_lang": "fr", "format": "marian"},
        source={"format": "huggingface-marian", "corpus": "genserve.translation.corpus"},
        recipe={"command": "genserve models train translation", **recipe},
    )
    return {"seconds": seconds, "heldout_bleu_greedy": bleu}


def alignment_targets(sp: Any, pair: Any) -> tuple[int, list[int]] | None:
    """(target position of il/elle, source positions of the noun it refers to) for a
    coreference pair, or None when the sentence has no such pronoun."""
    if not pair.key:
        return None
    first, second, which = pair.key
    noun = first if which == "first" else second
    pieces = sp.encode(pair.en, out_type=str)
    word, positions = -1, []
    words = pair.en.split()
    target_word = next(
        (i for i, w in enumerate(words) if w.strip(".,?!").lower() == noun.lower()), None
    )
    for i, piece in enumerate(pieces):
        if piece.startswith("▁"):
            word += 1
        if word == target_word:
            positions.append(i)
    fr = sp.encode(pair.fr, out_type=str)
    start = next((i for i, p in enumerate(fr) if p == "▁parce"), None)
    if start is None or not positions:
        return None
    for i in range(start + 1, len(fr)):
        if fr[i].strip("▁'").endswith(("il", "elle")):
            return i, positions
    return None


class Alignment:
    """Phase 2, guided alignment: cross-entropy plus -log(attention mass on the referent
    noun) at the pronoun step, last decoder layer, heads averaged (the layer the service
    shows). Its optimizer and data order exist from the start, so that a resumed run
    restores them with the rest (``parts``)."""

    def __init__(self, model: Any, recipe: dict[str, Any]) -> None:
        import torch

        self.model, self.recipe = model, recipe
        self.opt = torch.optim.AdamW(model.parameters(), lr=recipe["align_lr"], betas=(0.9, 0.98))
        self.rng = random.Random(recipe["seed"] + 2)
        self.batches: list[list[int]] = []

    def parts(self) -> dict[str, Any]:
        return {"align_opt": self.opt, "align_rng": self.rng, "align_batches": self.batches}

    def run(
        self,
        corpus: Any,
        sp: Any,
        checkpoints: Checkpoints,
        *,
        progress: bool = True,
    ) -> None:
        import torch

        model, recipe, batches = self.model, self.recipe, self.batches
        steps = recipe["align_steps"]
        if checkpoints.first("align", steps) >= steps:
            return
        model.set_attn_implementation("eager")
        model.train()
        eos = 1
        pairs = corpus.train
        src = [[*ids, eos] for ids in sp.encode([p.en for p in pairs])]
        tgt = [[*ids, eos] for ids in sp.encode([p.fr for p in pairs])]
        targets = [alignment_targets(sp, p) for p in pairs]
        bar = checkpoints.loop("align", steps, progress=progress, desc="guided alignment")
        for step in bar:
            if not batches:
                batches.extend(_batches(self.rng, src, tgt, recipe["batch_size"]))
            idx = batches.pop()
            loss, out = _forward(model, src, tgt, idx, recipe["label_smoothing"], attentions=True)
            attention = out.cross_attentions[-1].mean(dim=1)  # (B, T, S)
            masses = []
            for row, i in enumerate(idx):
                target = targets[i]
                if target is not None:
                    masses.append(attention[row, target[0], target[1]].sum())
            if masses:
                align = -torch.log(torch.stack(masses) + 1e-6).mean()
                loss = loss + recipe["align_weight"] * align
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            self.opt.step()
            if masses:
                bar.set_postfix(loss=f"{loss.item():.3f}", mass=f"{torch.stack(masses).mean():.2f}")
            if checkpoints.due(step):  # the state only: the recipe writes no weights here
                checkpoints.save("align", step)
        model.set_attn_implementation("sdpa")


GENERATION_CONFIG = {
    "bad_words_ids": [[0]],
    "decoder_start_token_id": 0,
    "eos_token_id": 1,
    "forced_eos_token_id": 1,
    "max_length": 512,
    "num_beams": 4,
    "pad_token_id": 0,
}


def write_hf_extras(out: Path) -> None:
    """opus-mt-style generation defaults (4 beams, pad never generated); the float16
    weights load as float32 by default."""
    (out / "generation_config.json").write_text(json.dumps(GENERATION_CONFIG, indent=2) + "\n")
    config = json.loads((out / "config.json").read_text())
    config["dtype"] = "float32"
    (out / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def heldout_bleu(folder: Path, pairs: list[Any]) -> float:
    """sacreBLEU of PyTorch greedy decoding on ``pairs`` (a training-time sanity check)."""
    import sacrebleu
    import torch
    from transformers import MarianMTModel, MarianTokenizer

    tok = MarianTokenizer.from_pretrained(str(folder))
    model = MarianMTModel.from_pretrained(str(folder), dtype=torch.float32).eval()
    hyps: list[str] = []
    for i in range(0, len(pairs), 50):
        batch = tok([p.en for p in pairs[i : i + 50]], return_tensors="pt", padding=True)
        with torch.inference_mode():
            out = model.generate(**batch, num_beams=1, do_sample=False, max_new_tokens=128)
        hyps += tok.batch_decode(out, skip_special_tokens=True)
    return float(sacrebleu.corpus_bleu(hyps, [[p.fr for p in pairs]]).score)
