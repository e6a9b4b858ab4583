"""Write a tiny random-weight llama GGUF that llama.cpp's llama-server loads and serves.

    python tools/make_tiny_gguf.py OUT.gguf        (needs: pip install gguf numpy)

For tests of the summarizer against a real OpenAI-compatible server: about 1 MB, loads in a
fraction of a second, answers in English word salad. Deterministic (fixed seed and
vocabulary, the same bytes on every run): 2 layers, n_embd 64, SentencePiece-style vocabulary
of ~350 English words with their prefixes, a ChatML chat template, eos ``<|im_end|>``.
Greedy decoding walks a fixed cycle of words, and every non-word token gets a very low logit,
so the model never stops by itself: send ``max_tokens`` (or ``stop``) with every request.
"""

from __future__ import annotations

import sys
from pathlib import Path

import gguf
import numpy as np

SEED = 1234
N_EMBD, N_HEAD, N_LAYER, N_FF, N_CTX_TRAIN = 64, 4, 2, 128, 8192
SPACE = "\u2581"  # SentencePiece's space marker
WORD_TEXT = """
the of and to in is it that was for on are as with his they be at one have this
from or had by hot word but what some we can out other were all there when up use
your how said an each she which do their time if will way about many then them
write would like so these her long make thing see him two has look more day could
go come did number sound no most people my over know water than call first who may
down side been now find any new work part take get place made live where after back
little only round man year came show every good me give our under name very through
just form sentence great think say help low line differ turn cause much mean before
move right boy old too same tell does set three want air well also play small end
put home read hand port large spell add even land here must big high such follow act
why ask men change went light kind off need house picture try us again animal point
mother world near build self earth father head stand own page should country found
answer school grow study still learn plant cover food sun four between state keep
eye never last let thought city tree cross farm hard start might story saw far sea
draw left late run while press close night real life few north open seem together
next white children begin got walk example ease paper group always music those both
mark often letter until mile river car feet care second book carry took science eat
room friend began idea fish mountain stop once base hear horse cut sure watch color
face wood main enough plain girl usual young ready above ever red list though feel
talk bird soon body dog family direct pose leave song measure door product black
short numeral class wind question happen complete ship area half rock order fire
south problem piece told knew pass since top whole king space heard best hour better
true during hundred five remember step early hold west ground interest reach fast
verb sing listen six table travel less morning ten simple several vowel toward war
lay against pattern slow center love person money serve appear road map rain rule
govern pull cold notice voice unit power town fine certain fly fall lead cry dark
machine note wait plan figure star box noun field rest correct able pound done beauty
drive stood contain front teach week final gave green quick develop ocean warm free
minute strong special mind behind clear tail produce fact street inch multiply
nothing course stay wheel full force blue object decide surface deep moon island
foot system busy test record boat common gold possible plane stead dry wonder laugh
thousand ago ran check game shape equate miss brought heat snow tire bring yes
distant fill east paint language among summary report meeting model server token
"""
WORDS = list(dict.fromkeys(WORD_TEXT.split()))  # in order, without repeats
PUNCTUATION = {".", ",", "!", "?", ";", ":"}
CHATML = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def vocabulary() -> tuple[list[str], list[float], list[int], np.ndarray]:
    """Tokens, SentencePiece scores, token types, and which tokens the model may emit."""
    kind = gguf.TokenType
    tokens: list[str] = []
    scores: list[float] = []
    types: list[int] = []
    emit: list[bool] = []

    def add(text: str, score: float, token_type: int, may_emit: bool = False) -> None:
        tokens.append(text)
        scores.append(score)
        types.append(int(token_type))
        emit.append(may_emit)

    add("<unk>", 0.0, kind.UNKNOWN)
    for control in ("<s>", "</s>", "<|im_start|>", "<|im_end|>"):
        add(control, 0.0, kind.CONTROL)
    for byte in range(256):
        add(f"<0x{byte:02X}>", 0.0, kind.BYTE)
    for char in [SPACE] + [chr(i) for i in range(33, 127)]:
        add(char, -1000.0, kind.NORMAL, char in PUNCTUATION)
    index = {text: i for i, text in enumerate(tokens)}
    # every word with its leading space marker, and its prefixes so SPM merges can reach it
    for word in WORDS:
        full = SPACE + word
        for end in range(2, len(full) + 1):
            piece = full[:end]
            if piece in index:
                emit[index[piece]] |= piece == full
                continue
            index[piece] = len(tokens)
            add(piece, -1000.0 + 10.0 * end, kind.NORMAL, piece == full)
    return tokens, scores, types, np.array(emit)


def write(out_path: Path) -> None:
    rng = np.random.default_rng(SEED)
    tokens, scores, types, emit = vocabulary()
    n_vocab = len(tokens)

    writer = gguf.GGUFWriter(str(out_path), "llama")
    writer.add_name("tiny-llama-test")
    writer.add_description(
        "random-weight test model made by make_tiny_gguf.py; output is word salad"
    )
    writer.add_context_length(N_CTX_TRAIN)
    writer.add_embedding_length(N_EMBD)
    writer.add_block_count(N_LAYER)
    writer.add_feed_forward_length(N_FF)
    writer.add_head_count(N_HEAD)
    writer.add_head_count_kv(N_HEAD)
    writer.add_rope_dimension_count(N_EMBD // N_HEAD)
    writer.add_rope_freq_base(10000.0)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_vocab_size(n_vocab)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_tokenizer_model("llama")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    writer.add_unk_token_id(0)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(4)  # <|im_end|>
    writer.add_pad_token_id(0)
    writer.add_add_bos_token(True)
    writer.add_add_eos_token(False)
    writer.add_add_space_prefix(True)
    writer.add_chat_template(CHATML)

    f32 = np.float32

    def normal(scale: float, shape: tuple[int, ...]) -> np.ndarray:
        return rng.normal(0, scale, shape).astype(f32)

    # residual dimension 0 carries a constant that the output layer turns into a per-token bias
    embedding = normal(1.0, (n_vocab, N_EMBD))
    embedding[:, 0] = 4.0
    writer.add_tensor("token_embd.weight", embedding)
    scale = 1.0 / np.sqrt(N_EMBD)
    for i in range(N_LAYER):
        writer.add_tensor(f"blk.{i}.attn_norm.weight", np.ones(N_EMBD, f32))
        for name in ("attn_q", "attn_k", "attn_v"):
            writer.add_tensor(f"blk.{i}.{name}.weight", normal(scale, (N_EMBD, N_EMBD)))
        attn_out = normal(scale, (N_EMBD, N_EMBD))
        attn_out[0, :] = 0.0  # keep residual dimension 0 constant
        writer.add_tensor(f"blk.{i}.attn_output.weight", attn_out)
        writer.add_tensor(f"blk.{i}.ffn_norm.weight", np.ones(N_EMBD, f32))
        writer.add_tensor(f"blk.{i}.ffn_gate.weight", normal(scale, (N_FF, N_EMBD)))
        writer.add_tensor(f"blk.{i}.ffn_up.weight", normal(scale, (N_FF, N_EMBD)))
        ffn_down = normal(1.0 / np.sqrt(N_FF), (N_EMBD, N_FF))
        ffn_down[0, :] = 0.0
        writer.add_tensor(f"blk.{i}.ffn_down.weight", ffn_down)
    writer.add_tensor("output_norm.weight", np.ones(N_EMBD, f32))
    output = normal(0.5, (n_vocab, N_EMBD))
    # greedy decoding walks a fixed random cycle through the words: the output row of a
    # token's successor is that token's embedding, so reading token t makes succ(t) the top logit
    cycle = rng.permutation(np.flatnonzero(emit))
    for token, successor in zip(cycle, np.roll(cycle, -1), strict=True):
        output[successor, 1:] = 0.5 * embedding[token, 1:]
    output[:, 0] = np.where(emit, 0.0, -20.0)  # about -70 logits for tokens it must not emit
    writer.add_tensor("output.weight", output)

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    out = Path(argv[0])
    out.parent.mkdir(parents=True, exist_ok=True)
    part = out.with_name(out.name + ".part")
    write(part)
    part.replace(out)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
