"""The per-step rules of the batched decoder as tensor operations over all rows.

openai-whisper's ``BeamSearchDecoder.update`` and ``ApplyTimestampRules.apply`` work row by
row and call ``.item()``/``.tolist()`` per row and candidate: one GPU sync each, thousands per
step at batch 64 x beam 5. :class:`BatchBeamSearchDecoder` and :class:`BatchTimestampRules`
give the same results (tests/test_batched.py compares them with whisper's) with one
device-to-host transfer per step. :mod:`components.transcribe.batched` uses them.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from whisper.decoding import ApplyTimestampRules, BeamSearchDecoder


class BatchBeamSearchDecoder(BeamSearchDecoder):
    """``BeamSearchDecoder.update`` as tensor operations over all files, with one
    device-to-host transfer per step (two when a beam reaches end-of-text).

    Same candidates, order, ties and finished-sequence bookkeeping as the stock decoder,
    which walks every file's ``beam x (beam + 1)`` candidates in Python (as ``batched`` did until
    2026-12-02, when its update took 9 ms of every step at 168 files on an H200;
    bench/RESULTS.md, "Long recordings").
    """

    def update(self, tokens: Tensor, logits: Tensor, sum_logprobs: Tensor) -> tuple[Tensor, bool]:
        """Extend each file's beams by one token; see ``BeamSearchDecoder.update``."""
        beam, device = self.beam_size, tokens.device
        n_audio, k = tokens.shape[0] // beam, beam * (beam + 1)
        first = self.finished_sequences is None
        if first:
            self.finished_sequences = [{} for _ in range(n_audio)]

        logprobs = F.log_softmax(logits.float(), dim=-1)
        top_logprobs, top_tokens = logprobs.topk(beam + 1)
        scores = (sum_logprobs[:, None] + top_logprobs).reshape(n_audio, k)
        cand = top_tokens.reshape(n_audio, k)
        source = torch.arange(n_audio * beam, device=device).repeat_interleave(beam + 1)
        source = source.reshape(n_audio, k)
        if first:
            # all beams start identical, so the stock decoder's candidates are keyed by token
            # alone: a token's last candidate counts, at the place the token first appeared
            same = cand[:, :, None] == cand[:, None, :]
            later = torch.ones(k, k, dtype=torch.bool, device=device).triu(1)
            valid = ~(same & later).any(-1)
            place = same.long().argmax(-1)  # the first candidate of the same token
        else:
            valid = torch.ones(n_audio, k, dtype=torch.bool, device=device)
            place = torch.arange(k, device=device).expand(n_audio, k)
        # Python's stable sort by score, descending, over the candidates in insertion order
        order = place.argsort(dim=1, stable=True)
        by_score = scores.gather(1, order).sort(dim=1, descending=True, stable=True).indices
        order = order.gather(1, by_score)
        by_valid = valid.gather(1, order).long()
        order = order.gather(1, by_valid.sort(dim=1, descending=True, stable=True).indices)
        scores, cand = scores.gather(1, order), cand.gather(1, order)
        source, valid = source.gather(1, order), valid.gather(1, order)

        live = valid & (cand != self.eot)
        alive = live.cumsum(dim=1)
        take = live & (alive <= beam)  # the first `beam` candidates that go on
        done = valid & ~live & (alive < beam)  # end-of-text before the beam-th one: finished
        # every file has at least `beam` live candidates (each beam's beam + 1 distinct
        # tokens hold one end-of-text at most), so `take` holds exactly `beam` per file: their
        # places by a sort, not by a boolean index, which would wait for the device
        picked = take.long().argsort(dim=1, descending=True, stable=True)[:, :beam]
        rows = source.gather(1, picked).reshape(-1)
        host = torch.cat([rows, done.reshape(-1).long()]).cpu().numpy()
        next_rows, done_host = host[: rows.numel()].tolist(), host[rows.numel() :]

        if done_host.any():
            done_at = np.flatnonzero(done_host)
            files = done_at // k
            flat = torch.from_numpy(done_at).to(device)
            done_scores = scores.reshape(-1)[flat].tolist()
            prefixes = tokens[source.reshape(-1)[flat]].tolist()
            newly = [{} for _ in range(n_audio)]
            for f, prefix, score in zip(files.tolist(), prefixes, done_scores, strict=True):
                newly[f][(*prefix, self.eot)] = score
            for previously_finished, newly_finished in zip(
                self.finished_sequences, newly, strict=True
            ):
                for seq in sorted(newly_finished, key=newly_finished.get, reverse=True):
                    if len(previously_finished) >= self.max_candidates:
                        break
                    previously_finished[seq] = newly_finished[seq]

        tokens = torch.cat([tokens[rows], cand.gather(1, picked).reshape(-1, 1)], dim=-1)
        sum_logprobs.copy_(scores.gather(1, picked).reshape(-1))
        self.inference.rearrange_kv_cache(next_rows, index=rows)
        completed = all(len(s) >= self.max_candidates for s in self.finished_sequences)
        return tokens, completed


class BatchTimestampRules(ApplyTimestampRules):
    """``ApplyTimestampRules.apply`` as tensor operations over all rows (no per-row sync)."""

    def apply(self, logits: Tensor, tokens: Tensor) -> None:
        """Mask ``logits`` in place; see ``ApplyTimestampRules.apply``."""
        tk = self.tokenizer
        ts_begin = tk.timestamp_begin
        if tk.no_timestamps is not None:
            logits[:, tk.no_timestamps] = -np.inf

        sampled = tokens[:, self.sample_begin :]
        n_rows, n = sampled.shape
        vocab = torch.arange(logits.shape[-1], device=logits.device)
        is_ts = sampled >= ts_begin
        false = torch.zeros(n_rows, dtype=torch.bool, device=logits.device)
        last_ts = is_ts[:, -1] if n >= 1 else false
        penultimate_ts = is_ts[:, -2] if n >= 2 else ~false

        ban = ((last_ts & penultimate_ts)[:, None] & (vocab >= ts_begin)[None]) | (
            (last_ts & ~penultimate_ts)[:, None] & (vocab < tk.eot)[None]
        )
        if n >= 1:
            has_ts = is_ts.any(dim=1)
            last_pos = n - 1 - is_ts.flip(1).to(torch.int8).argmax(dim=1)
            last_value = sampled.gather(1, last_pos[:, None])[:, 0]
            bound = last_value + (~(last_ts & ~penultimate_ts)).long()
            ban |= has_ts[:, None] & (vocab >= ts_begin)[None] & (vocab[None] < bound[:, None])
        logits.masked_fill_(ban, -np.inf)

        if n == 0:
            logits[:, :ts_begin] = -np.inf
            if self.max_initial_timestamp_index is not None:
                logits[:, ts_begin + self.max_initial_timestamp_index + 1 :] = -np.inf

        logprobs = F.log_softmax(logits.float(), dim=-1)
        timestamp_logprob = logprobs[:, ts_begin:].logsumexp(dim=-1)
        max_text_logprob = logprobs[:, :ts_begin].max(dim=-1).values
        take_timestamp = (timestamp_logprob > max_text_logprob)[:, None] & (vocab < ts_begin)[None]
        logits.masked_fill_(take_timestamp, -np.inf)
