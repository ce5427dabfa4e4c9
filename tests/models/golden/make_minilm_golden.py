"""Golden hidden states of all-MiniLM-L6-v2 from the PyTorch reference (``transformers.BertModel``).

Not part of the test run and not a project dependency: it needs PyTorch. Regenerate with::

    python3 -m venv /tmp/golden-venv
    /tmp/golden-venv/bin/pip install torch==2.13.0 transformers numpy
    /tmp/golden-venv/bin/python tests/models/golden/make_minilm_golden.py \
        --model-dir="$(.venv/bin/python -c 'from mmjax.data import text; print(text.minilm_dir())')"

Writes ``minilm_golden.npz`` next to this file: ``input_ids`` int32 [4, L], ``attention_mask``
int32 [4, L] (1 on real tokens; shorter sentences are padded to the longest), ``token_type_ids``
int32 [4, L] (zeros) and ``last_hidden_state`` float32 [4, L, 384].
"""

import argparse
import os

import numpy as np
import torch
import transformers

# Lines of dialogue of different lengths, so the batch has padding.
SENTENCES = (
    "Oh great, another Monday meeting. I can hardly contain my excitement.",
    "Thanks so much for the birthday cake, it was delicious!",
    "Why did you leave without telling anyone where you were going?",
    "Fine.",
)
OUTPUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "minilm_golden.npz")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", required=True, help="all-MiniLM-L6-v2 checkpoint directory")
    args = parser.parse_args()
    tokenizer = transformers.AutoTokenizer.from_pretrained(args.model_dir, local_files_only=True)
    model = transformers.BertModel.from_pretrained(args.model_dir, local_files_only=True, add_pooling_layer=False)
    model.eval()
    inputs = tokenizer(list(SENTENCES), padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**inputs).last_hidden_state
    np.savez_compressed(OUTPUT, sentences=np.array(SENTENCES),
                        input_ids=inputs["input_ids"].numpy().astype(np.int32),
                        attention_mask=inputs["attention_mask"].numpy().astype(np.int32),
                        token_type_ids=inputs["token_type_ids"].numpy().astype(np.int32),
                        last_hidden_state=hidden.numpy().astype(np.float32))
    print(f"wrote {OUTPUT}: torch {torch.__version__}, transformers {transformers.__version__}, "
          f"input_ids {tuple(inputs['input_ids'].shape)}")


if __name__ == "__main__":
    main()
