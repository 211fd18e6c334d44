"""Q-Anchor pretraining: joint contrastive + next-token training of the dual-tower model.

Run it with::

    qanchor pretrain --data data/built --out runs/model --preset small
    torchrun --nproc_per_node 2 -m qanchor.cli pretrain --data data/built --out runs/model --preset tiny

Checkpoints go to ``<out>.ckpt/`` and a rerun resumes from the latest one bit-exactly; the model
directory is written atomically when training ends.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path

import torch

from qanchor.config import to_dict
from qanchor.io import atomic_dir
from qanchor.model import layout as L
from qanchor.model import trainer as T
from qanchor.model.artifact import build_model, encoder_fingerprint, save_model, trainable_state
from qanchor.model.config import PretrainConfig
from qanchor.model.data import BuiltData, PairSampler, UserTable, fit_bag_vectorizer
from qanchor.model.losses import answer_vocab, gather_with_grad, info_nce
from qanchor.model.network import QAnchorModel
from qanchor.model.profile import ProfileFeaturizer
from qanchor.model.retrieval import KINDS, retrieval_accuracy
from qanchor.model.sample import pretrain_users

log = logging.getLogger(__name__)


@dataclasses.dataclass
class Setup:
    """Everything a training step needs."""

    cfg: PretrainConfig
    rt: T.Runtime
    data: BuiltData  # its snapshot and profile frames emptied: the table holds the users
    model: QAnchorModel
    featurizer: ProfileFeaturizer
    table: UserTable
    vectors: torch.Tensor | None  # frozen event vectors of table.texts, or None (encoder trains)
    lm_vocab: torch.Tensor | None = None  # the next-token softmax's shortlist (None: every token)


def prepare(built_dir: str | Path, cfg: PretrainConfig, rt: T.Runtime) -> Setup:
    """Load data, fit the profile featurizer on training users, build the model and vectors."""
    users = pretrain_users(built_dir, cfg.max_train_users, cfg.eval_users, cfg.runtime.seed)
    data = BuiltData.load(built_dir, cfg.runtime.feature_repo, users=users)
    train = set(data.split_users("train"))
    prof = data.profiles
    featurizer = ProfileFeaturizer.fit(None if prof is None else prof[prof["user_id"].isin(train)])
    mcfg = cfg.model_config(data.sources, featurizer.dim)
    model = build_model(mcfg).to(rt.device)
    if mcfg.bag_dim:
        model.bag_vectorizer = fit_bag_vectorizer(
            data.snapshots, mcfg.sources, train, mcfg.bag_dim, cfg.runtime.seed
        )
    table = UserTable.from_snapshots(
        data.snapshots, mcfg.sources, mcfg.events_per_source, mcfg.source_caps, prof, featurizer,
        mcfg.whole_history, model.bag_vectorizer, mcfg.text_numbers,
    )  # fmt: skip
    vectors = frozen_vectors(model, table.texts, rt) if mcfg.encoder_lora_r == 0 else None
    # Training reads users through the table: the frames would stay resident for the whole run
    # for nothing (loading a whole 100,000-user build left the process at 1.8 GB).
    data.snapshots, data.profiles = data.snapshots.iloc[:0], None
    lm_vocab = None
    if cfg.lm_shortlist:
        answers = data.pairs.loc[data.pairs["split"] == "train", "answer"].unique()
        lm_vocab = answer_vocab(model.layout, answers).to(rt.device)
    s = Setup(cfg, rt, data, model, featurizer, table, vectors, lm_vocab)
    calibrate_head(s)
    return s


@torch.no_grad()
def calibrate_head(s: Setup, n: int = 256) -> None:
    """Measure each tower's hidden-state statistics on fixed training pairs (see ``Head``)."""
    train = s.data.pairs[s.data.pairs["split"] == "train"]
    sampler = PairSampler(train, s.table.index(), s.cfg.runtime.seed, s.cfg.future_pair_prob)
    items = sampler.sample(0, min(n, len(sampler.users)))
    lay, model = s.model.layout, s.model
    was_training = model.training
    model.eval()
    anchors, answers = [], []
    for k in range(0, len(items), 32):
        chunk = items[k : k + 32]
        batch = L.collate([[lay.prefix(s.table.inputs[r]), lay.suffix(q)] for r, q, _ in chunk],
                          [s.table.inputs[r] for r, _, _ in chunk], lay.pad).to(s.rt.device)  # fmt: skip
        anchors.append(model.anchor_hidden(batch, *batch_vectors(s, batch)))
        sem = [lay.semantic(a) for _, _, a in chunk]
        ids, mask = (
            L.pad(sem, lay.pad).to(s.rt.device),
            L.pad([[1] * len(x) for x in sem], 0).to(s.rt.device),
        )
        answers.append(model.semantic(ids, mask, raw=True))
    model.head.calibrate("anchor", torch.cat(anchors))
    model.head.calibrate("semantic", torch.cat(answers))
    model.train(was_training)


def frozen_vectors(model: QAnchorModel, texts: list[str], rt: T.Runtime) -> torch.Tensor:
    """Vectors of ``texts`` from the disk cache; rank 0 encodes what is missing, others wait."""
    import torch.distributed as dist

    from qanchor.model.backbones import cache_root
    from qanchor.model.vectors import VectorCache, encoder_texts

    root, fp = cache_root() / "event_vectors", encoder_fingerprint(model.cfg)

    def encode(batch: list[str]):
        return model.text_encoder.encode(batch, max_length=model.cfg.encoder_max_length).numpy()

    if rt.world > 1 and not rt.is_main:
        dist.barrier()  # wait for rank 0 to fill the cache
    vecs = VectorCache(root, fp).get(encoder_texts(texts, model.cfg.text_numbers), encode)
    if rt.world > 1 and rt.is_main:
        dist.barrier()
    return torch.from_numpy(vecs).to(rt.device)


def batch_vectors(s: Setup, batch: L.Batch) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Text vectors of a batch's event slots and of its whole-history bag (None: not read)."""
    bag = event_vectors(s, batch.bag_text) if s.model.cfg.whole_history else None
    return event_vectors(s, batch.ev_text), bag


def event_vectors(s: Setup, ev_text: torch.Tensor) -> torch.Tensor:
    """Vectors of a batch's events: looked up (frozen encoder) or encoded with gradients."""
    if s.vectors is not None:
        return s.vectors[ev_text]
    uniq, inverse = torch.unique(ev_text, return_inverse=True)
    return s.model.event_vectors([s.table.texts[i] for i in uniq.tolist()])[inverse]


def micro_step(
    s: Setup, items: list[tuple[int, str, str]]
) -> tuple[torch.Tensor, dict[str, float]]:
    """Loss of one micro-batch of (user row, query, answer); negatives gathered across ranks."""
    lay, cfg = s.model.layout, s.cfg
    segs = [[lay.prefix(s.table.inputs[r]), lay.suffix(q), lay.answer(a)] for r, q, a in items]
    batch = L.collate(segs, [s.table.inputs[r] for r, _, _ in items], lay.pad).to(s.rt.device)
    sem = [lay.semantic(a) for _, _, a in items]
    sem_ids, sem_mask = (
        L.pad(sem, lay.pad).to(s.rt.device),
        L.pad([[1] * len(x) for x in sem], 0).to(s.rt.device),
    )
    with s.rt.autocast():
        u, lm = s.model.anchor(batch, *batch_vectors(s, batch), lm_vocab=s.lm_vocab)
        v = s.model.semantic(sem_ids, sem_mask)
    u_all, world = gather_with_grad(u)
    v_all, _ = gather_with_grad(v)
    margin = cfg.margin if cfg.margin_filter else None
    con = info_nce(u_all, v_all, cfg.temperature, margin, tuple(cfg.neg_terms))
    # x world: each rank back-propagates the full-batch loss through its own rows only, and
    # gradients are averaged over ranks, which together give the single-process gradient.
    # The next-token mean is re-weighted by this rank's share of scored tokens for the same reason.
    lm = lm * T.token_share(batch.labels, world, L.IGNORE)
    loss = cfg.contrastive_weight * con * world + cfg.lm_weight * lm
    tokens = int(batch.attention_mask.sum() + sem_mask.sum())
    return loss, {"contrastive": con.item(), "lm": lm.item(), "tokens": tokens}


def pretrain(
    built_dir: str | Path, out_dir: str | Path, cfg: PretrainConfig, stop_after: int | None = None
) -> Path:
    """Pretrain and write the model directory ``out_dir``; resumes from ``<out_dir>.ckpt``.

    Args:
        built_dir: a directory written by ``qanchor data build``.
        out_dir: the model directory to write.
        cfg: the resolved pretraining config.
        stop_after: stop (with a checkpoint) after this many steps of *this* run; for time-boxed
            jobs and the resume test. The model directory is written only when training ends.
    """
    rt = T.setup_runtime(cfg.device, cfg.runtime.bf16)
    per_rank, rem = divmod(cfg.batch_size, rt.world * cfg.grad_accum)
    if rem or per_rank == 0:
        from qanchor.errors import QAnchorError

        raise QAnchorError(
            f"batch_size {cfg.batch_size} must divide by world size x grad_accum ({rt.world}x{cfg.grad_accum})"
        )
    torch.manual_seed(cfg.runtime.seed + rt.rank)
    s = prepare(built_dir, cfg, rt)
    out_dir, ckpt_dir = Path(out_dir), Path(f"{out_dir}.ckpt")
    history = _train(s, ckpt_dir, per_rank, stop_after)
    if history["step"] < cfg.steps:
        return ckpt_dir
    metrics = {
        kind: retrieval_accuracy(
            s.model, s.table, s.data.pairs, s.data.split_users("test"), cfg.eval_users, cfg.eval_batch, rt.device,
            kind=kind, vectors=s.vectors,
        )
        for kind in KINDS
    }  # fmt: skip
    if rt.is_main:
        from qanchor.features.spec import FeatureSpec

        spec = FeatureSpec.from_manifest(s.data.manifest).to_dict()
        extra = {"pretrain": to_dict(cfg), "training": history, "retrieval": metrics,
                 "feature_spec": spec}  # fmt: skip
        with atomic_dir(out_dir) as tmp:
            # Where the training build lives: drift monitoring compares new builds with it.
            manifest = {**s.data.manifest, "built_dir": str(Path(s.data.root).resolve())}
            save_model(s.model, tmp, s.featurizer, manifest, extra)
        for kind, m in metrics.items():
            log.info(
                "retrieval (%s) top-1 %.3f, MRR %.3f (chance %.3f)",
                kind,
                m["top1"],
                m["mrr"],
                m["chance"],
            )
    return out_dir


def _step(
    s: Setup, items: list, per_rank: int, params: list, opt: torch.optim.Optimizer, sched
) -> tuple[float, dict[str, float], int]:
    """One optimiser step over ``grad_accum`` micro-batches; (loss, its parts, tokens seen)."""
    cfg, rt = s.cfg, s.rt
    loss_sum, parts, tokens = 0.0, {"contrastive": 0.0, "lm": 0.0}, 0
    for k in range(cfg.grad_accum):
        loss, info = micro_step(s, items[k * per_rank : (k + 1) * per_rank])
        (loss / cfg.grad_accum).backward()
        loss_sum += float(loss.detach()) / cfg.grad_accum
        parts = {n: parts[n] + info[n] / cfg.grad_accum for n in parts}
        tokens += info["tokens"] * rt.world
    T.all_reduce_grads(params, rt.world)
    if cfg.clip_grad > 0:
        torch.nn.utils.clip_grad_norm_(params, cfg.clip_grad)
    opt.step()
    sched.step()
    opt.zero_grad(set_to_none=True)
    return loss_sum, parts, tokens


def _train(s: Setup, ckpt_dir: Path, per_rank: int, stop_after: int | None) -> dict:
    from qanchor.progress import bar as progress

    cfg, rt, model = s.cfg, s.rt, s.model
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, T.warmup_cosine(cfg.warmup_steps, cfg.steps))
    latest = T.latest_checkpoint(ckpt_dir)
    start = T.load_checkpoint(latest, model, opt, sched) if latest else 0
    sampler = PairSampler(
        s.data.pairs[s.data.pairs["split"] == "train"],
        s.table.index(),
        cfg.runtime.seed,
        cfg.future_pair_prob,
    )
    end = cfg.steps if stop_after is None else min(cfg.steps, start + stop_after)
    bar = progress(
        range(start, end), initial=start, total=cfg.steps, disable=not rt.is_main, desc="pretrain"
    )
    stats = {"step": start, "loss": float("nan"), "samples_per_s": 0.0, "tokens_per_s": 0.0}
    curve: list[tuple[int, float, float, float]] = []  # (step, loss, contrastive, lm) per log point
    t0, seen, tokens = time.perf_counter(), 0, 0
    model.train()
    try:
        for step in bar:
            items = sampler.sample(step, cfg.batch_size)[rt.rank * per_rank * cfg.grad_accum :][
                : per_rank * cfg.grad_accum
            ]
            loss_sum, parts, n_tokens = _step(s, items, per_rank, params, opt, sched)
            tokens += n_tokens
            seen += cfg.batch_size
            dt = time.perf_counter() - t0
            stats = {"step": step + 1, "loss": loss_sum, **parts,
                     "samples_per_s": seen / dt, "tokens_per_s": tokens / dt}  # fmt: skip
            if (step + 1) % max(cfg.log_every, 1) == 0 or step + 1 == end:
                curve.append((step + 1, loss_sum, parts["contrastive"], parts["lm"]))
                bar.set_postfix(
                    loss=f"{loss_sum:.3f}",
                    nce=f"{parts['contrastive']:.3f}",
                    lm=f"{parts['lm']:.3f}",
                    sps=f"{seen / dt:.1f}",
                )
            if (
                rt.is_main
                and cfg.checkpoint_every
                and (step + 1) % cfg.checkpoint_every == 0
                and step + 1 < cfg.steps
            ):
                T.save_checkpoint(ckpt_dir, step + 1, trainable_state(model), opt, sched)
    except KeyboardInterrupt:
        if rt.is_main:
            T.save_checkpoint(ckpt_dir, stats["step"], trainable_state(model), opt, sched)
        raise
    if rt.is_main and end < cfg.steps and end > start:
        T.save_checkpoint(ckpt_dir, end, trainable_state(model), opt, sched)
    model.eval()
    return {**stats, "curve": curve}
