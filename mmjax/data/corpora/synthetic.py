"""The embedded default corpus: synthetic multi-party multimodal dialogues with planted signals.

The generative story, per dialogue (everything drawn from one ``numpy`` generator seeded per
split, so the corpus is a pure function of the seed):

1. 2-4 participants are drawn from a pool of 16 speakers. Each speaker has a fixed *voice*
   vector (added to every audio frame) and *face* vector (added to every visual frame): speaker
   identity is visible but carries no label information. Turns alternate between participants
   (never the same speaker twice in a row); a dialogue has 3-14 turns.
2. Each utterance draws independent flags: it contains a joke *setup* word (p=0.35), a
   *punchline* word (p=0.35), it is *sarcastic* (p=0.16, CMMA's rate), and an arousal *intensity* of 1 or 2.
3. **Humor depends on the previous turn**: an utterance is humorous iff it has a punchline and
   the previous turn of the dialogue had a setup. A model without dialogue context sees only
   the punchline and is at chance on which punchlines land.
4. **Sentiment** (negative/neutral/positive): sarcastic utterances are negative; a humorous
   non-sarcastic utterance is positive; otherwise drawn with p=(0.3, 0.35, 0.35).
5. **Emotion** follows sentiment (tasks correlated): negative -> anger/sadness/disgust/fear
   (sarcasm: anger or disgust), neutral -> neutral (0.85) or surprise, positive -> joy (0.85)
   or surprise.
6. **Sarcasm needs fusion**: the *words* of a sarcastic utterance are drawn exactly like those
   of a sincere positive one (positive polarity words, a joy or surprise word), while its
   prosody (audio) and face (visual) carry the true negative valence. Text alone cannot tell
   sarcasm from sincere praise, audio/visual alone cannot tell it from sincere negativity; only
   text polarity contradicting the audio/visual valence identifies it. For other utterances the
   words agree with the sentiment, with the emotion's cue word present in 80% of them.
7. **Features**: audio is 8-24 frames x 24 dims, visual 4-12 frames x 16 dims, unit Gaussian
   noise plus the speaker's vector; in a random ~60% of frames (the "cue" frames) audio adds
   valence x (valence direction) and intensity x (arousal direction), visual adds valence x
   (valence direction) + the emotion's own direction. Each of audio and visual is absent for 8%
   of utterances (never both): recorded as absent, never as zeros.
8. **Correlation labels** on CMMA's -2..2 scale. emotion_sentiment: 0 when the *expressed*
   (worded) emotion or the sentiment is neutral, else +intensity when the expressed emotion's
   valence agrees with the sentiment and -intensity when it conflicts (every sarcastic
   utterance conflicts). sarcasm_humor: +2 when the sarcasm is the joke
   (sarcastic and humorous), -intensity for sarcasm that is not funny, +1 for humor without
   sarcasm, 0 for neither.
9. **Sentiment intensity** (regression, [-3, 3]): sentiment x (intensity + (polarity words - 1)
   / 2), so 0 for neutral utterances and +-1, 1.5, 2 or 2.5 otherwise. Its size is heard
   (arousal) and read (one or two polarity words); its sign needs fusion where the words are
   sarcastic. It is derived from the draws above, so adding it changed no other label.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from mmjax import progress as progress_lib
from mmjax.data import records, text
from mmjax.data.schema import Dialogue
from mmjax.tasks import TASKS

GENERATOR_VERSION = 3  # bump whenever the generative story changes: prepared copies are then rebuilt
# Feature dims and frame ranges (inclusive) of the default corpus; others can be asked for, e.g.
# CMMA-sized 50x74 audio / 50x35 visual to measure the input pipeline at a realistic size.
DEFAULT_FEATURES = {"audio_dim": 24, "visual_dim": 16, "audio_frames": (8, 24), "visual_frames": (4, 12)}
AUDIO_DIM, VISUAL_DIM = DEFAULT_FEATURES["audio_dim"], DEFAULT_FEATURES["visual_dim"]
NUM_SPEAKERS = 16
SPLIT_SEED_OFFSETS = {"train": 0, "validation": 1, "test": 2}

_EMOTIONS = TASKS["emotion"].labels
_VALENCE = {"neutral": 0, "joy": 1, "surprise": 0, "anger": -1, "sadness": -1, "disgust": -1, "fear": -1}
_EMOTION_WORDS = {e: [f"{e}_{i}" for i in range(8)] for e in _EMOTIONS if e != "neutral"}
_POLARITY_WORDS = {1: [f"good_{i}" for i in range(16)], -1: [f"bad_{i}" for i in range(16)]}
_SETUP_WORDS = [f"setup_{i}" for i in range(6)]
_PUNCHLINE_WORDS = [f"punchline_{i}" for i in range(6)]
_FILLER_WORDS = [f"word_{i}" for i in range(160)]

VOCAB: tuple[str, ...] = text.SPECIAL_TOKENS + tuple(
    _FILLER_WORDS + _POLARITY_WORDS[1] + _POLARITY_WORDS[-1] + _SETUP_WORDS + _PUNCHLINE_WORDS
    + [w for words in _EMOTION_WORDS.values() for w in words])
# The corpus's own tokenizer; config.data.tokenizer may name another (e.g. MiniLM's WordPiece).
TOKENIZER = text.VocabularyTokenizer(VOCAB, "word", "synthetic_vocabulary")


def _unit(rng: np.random.Generator, dim: int) -> np.ndarray:
    v = rng.normal(size=dim)
    return v / np.linalg.norm(v)


class _World:
    """Speakers and feature directions shared by every split (seeded by the corpus seed)."""

    def __init__(self, seed: int, features: Mapping):
        rng = np.random.default_rng([seed, 7])
        audio_dim, visual_dim = features["audio_dim"], features["visual_dim"]
        self.audio_frames = (features["audio_frames"][0], features["audio_frames"][1] + 1)
        self.visual_frames = (features["visual_frames"][0], features["visual_frames"][1] + 1)
        self.voices = rng.normal(scale=0.5, size=(NUM_SPEAKERS, audio_dim))
        self.faces = rng.normal(scale=0.5, size=(NUM_SPEAKERS, visual_dim))
        self.audio_valence, self.audio_arousal = _unit(rng, audio_dim), _unit(rng, audio_dim)
        self.visual_valence = _unit(rng, visual_dim)
        self.visual_emotion = {e: 0.8 * _unit(rng, visual_dim) for e in _EMOTIONS}


def _words(rng, polarity: int, expressed_emotion: str, setup: bool, punchline: bool) -> tuple[list[str], int]:
    """The utterance's words, and how many of them are polarity words."""
    words = list(rng.choice(_FILLER_WORDS, size=rng.integers(2, 8)))
    polar = 0
    if polarity:
        polar = int(rng.integers(1, 3))
        words += list(rng.choice(_POLARITY_WORDS[polarity], size=polar))
    if expressed_emotion != "neutral" and rng.random() < 0.8:
        words.append(rng.choice(_EMOTION_WORDS[expressed_emotion]))
    if setup:
        words.append(rng.choice(_SETUP_WORDS))
    if punchline:
        words.append(rng.choice(_PUNCHLINE_WORDS))
    rng.shuffle(words)
    return [str(w) for w in words], polar


def _features(rng, length_range, base, cue) -> np.ndarray:
    frames = int(rng.integers(*length_range))
    x = rng.normal(size=(frames, base.shape[0])) + base
    cue_frames = rng.random(frames) < 0.6
    x[cue_frames] += cue
    return x.astype(np.float32)


def _dialogue(rng: np.random.Generator, world: _World, dialogue_id: str, tokenizer: text.Tokenizer) -> Dialogue:
    participants = rng.choice(NUM_SPEAKERS, size=rng.integers(2, 5), replace=False)
    num_turns = int(rng.integers(3, 15))
    speakers, labels = [], {t: [] for t in TASKS}
    texts, audio, visual = [], [], []
    previous_setup, previous_speaker = False, None
    for _ in range(num_turns):
        speaker = int(rng.choice([p for p in participants if p != previous_speaker]))
        setup, punchline = rng.random() < 0.35, rng.random() < 0.35
        sarcastic = rng.random() < 0.16
        intensity = int(rng.integers(1, 3))
        humor = punchline and previous_setup
        if sarcastic:
            sentiment = -1
            emotion = str(rng.choice(["anger", "disgust"]))
        else:
            sentiment = 1 if humor else int(rng.choice([-1, 0, 1], p=[0.3, 0.35, 0.35]))
            if sentiment < 0:
                emotion = str(rng.choice(["anger", "sadness", "disgust", "fear"]))
            else:
                emotion = str(rng.choice(["neutral" if sentiment == 0 else "joy", "surprise"], p=[0.85, 0.15]))
        # Sarcasm words its negativity as praise: joy or surprise, as sincere positive turns do.
        expressed_emotion = str(rng.choice(["joy", "surprise"], p=[0.85, 0.15])) if sarcastic else emotion
        words, polar = _words(rng, 1 if sarcastic else sentiment, expressed_emotion, setup, punchline)

        audio_cue = sentiment * world.audio_valence + (intensity - 1.5) * 2 * world.audio_arousal
        visual_cue = 0.8 * sentiment * world.visual_valence + world.visual_emotion[emotion]
        missing = rng.random()
        audio.append(None if missing < 0.08 else
                     _features(rng, world.audio_frames, world.voices[speaker], audio_cue))
        visual.append(None if 0.08 <= missing < 0.16 else
                      _features(rng, world.visual_frames, world.faces[speaker], visual_cue))

        expressed_valence = _VALENCE[expressed_emotion]
        emotion_sentiment = 0 if expressed_valence == 0 or sentiment == 0 else (
            intensity if expressed_valence == sentiment else -intensity)
        sarcasm_humor = (2 if humor else -intensity) if sarcastic else int(humor)
        for task, value in (("sentiment", sentiment + 1), ("emotion", _EMOTIONS.index(emotion)),
                            ("sarcasm", int(sarcastic)), ("humor", int(humor)),
                            ("emotion_sentiment", emotion_sentiment + 2),
                            ("sarcasm_humor", sarcasm_humor + 2),
                            ("sentiment_intensity", sentiment * (intensity + (polar - 1) / 2))):
            labels[task].append(value)
        speakers.append(f"speaker_{speaker:02d}")
        texts.append(" ".join(words))
        previous_setup, previous_speaker = setup, speaker
    return Dialogue(
        dialogue_id=dialogue_id,
        utterance_ids=[f"{dialogue_id}_u{i}" for i in range(num_turns)],
        speakers=speakers, texts=texts, tokens=tokenizer.encode_batch(texts), audio=audio, visual=visual,
        labels={t: np.array(v, TASKS[t].label_dtype) for t, v in labels.items()})


def generate(split: str, num_dialogues: int, seed: int = 0, features: Mapping | None = None,
             tokenizer: text.Tokenizer = TOKENIZER) -> list[Dialogue]:
    """The ``split`` of the synthetic corpus: ``num_dialogues`` dialogues, deterministic in seed,
    their texts tokenised by ``tokenizer``. ``features`` overrides dims / frame ranges of
    ``DEFAULT_FEATURES``."""
    if split not in SPLIT_SEED_OFFSETS:
        raise ValueError(f"unknown split {split!r}; valid splits: {list(SPLIT_SEED_OFFSETS)}")
    world = _World(seed, {**DEFAULT_FEATURES, **(features or {})})
    rng = np.random.default_rng([seed, SPLIT_SEED_OFFSETS[split]])
    return [_dialogue(rng, world, f"{split}_{i:05d}", tokenizer) for i in range(num_dialogues)]


def spec(dialogues: Mapping[str, int], seed: int, features: Mapping | None = None, tokenizer: str = "",
         text_states: str | None = None) -> dict:
    """What determines the corpus; recorded in the manifest under "synthetic" (JSON types).
    ``tokenizer`` as in ``config.data.tokenizer`` ("" the corpus's own); ``text_states`` the
    checkpoint whose states the records cache ("" all-MiniLM-L6-v2, None none)."""
    features = {k: list(v) if isinstance(v, (tuple, list)) else v
                for k, v in {**DEFAULT_FEATURES, **(features or {})}.items()}
    unknown = sorted(set(features) - set(DEFAULT_FEATURES))
    if unknown:
        raise ValueError(f"unknown synthetic feature settings {unknown}; valid: {sorted(DEFAULT_FEATURES)}")
    out = {"generator_version": GENERATOR_VERSION, "seed": seed, "dialogues": dict(dialogues),
           "features": features, "tokenizer": tokenizer}
    return out if text_states is None else {**out, "text_states": text_states}


def write(output_dir: str, dialogues: Mapping[str, int], seed: int = 0, features: Mapping | None = None,
          tokenizer: str = "", progress: bool = True, text_states=None) -> dict:
    """Generates every split (name -> number of dialogues), tokenised by the tokenizer named as
    in ``config.data.tokenizer``, and writes it as records; the manifest. ``text_states``: None,
    or the callable that caches a frozen encoder's states in them (``mmjax.models.text_states.Cache``,
    whose ``checkpoint`` the manifest records)."""
    corpus = spec(dialogues, seed, features, tokenizer, None if text_states is None else text_states.checkpoint)
    features = corpus["features"]
    tok = text.from_config(tokenizer, TOKENIZER)
    splits = {split: generate(split, n, seed, features, tok)
              for split, n in progress_lib.bar(dialogues.items(), desc="generating splits", unit="split", leave=False, enabled=progress)}
    states = None if text_states is None else text_states(splits, tok.describe(), progress)
    return records.write_corpus(
        output_dir, "synthetic", splits, tasks=list(TASKS.values()), audio_dim=features["audio_dim"],
        visual_dim=features["visual_dim"], text=tok.describe(), text_states=states, extra={"synthetic": corpus})
