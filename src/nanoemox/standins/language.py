"""What the tiny language stand-in reads before P2E: general English, feelings, generic instructions.

The paper starts from Qwen2.5-Instruct, which knows English, knows what emotion words
mean and follows generic instructions, but has never been trained on the six affective
tasks of Nano-EmoX. The tiny preset's language model starts from random weights, so the
demo gives it a stand-in for that pre-training. Everything it reads is written here,
from this module's own word lists; none of it depends on a SynthAffect record, and none
of it comes from SynthAffect's wording tables (its subtitles, remarks, events, dialogue
lines, reasons or replies). Five kinds of text:

- **everyday sentences** (`everyday_sentences`): plain statements about everyday
  topics ("Anna fixed the broken washing machine on Monday."), read whole;
- **feelings** (`feeling_sentences`, `lexicon_sentences`): sentences that use emotion
  words as a speaker of English would, from this module's own expressions and the
  general emotion vocabulary (`"I could dance!" Ben said, delighted.`, `Anger is an
  unpleasant feeling.`); what general English emotion words mean (`LEXICON`, single
  dictionary words: `The word "furious" goes with anger.`); and what everyday speech
  acts are called (`By saying "Sorry I was late for the quiz night.", Ben was
  apologising.`); read whole;
- **generic instructions** (`generic_turns`): `###Human: ... ###Assistant: ...`
  turns of tasks that are none of the six (repeat a sentence, give its last word, pick
  the listed word that occurs in a sentence, pick or list the words of a category,
  number the sentences of a text, tag the topic of a sentence, say what a sentence is
  about); the loss is on the answer only, as in instruction tuning;
- **framed requests** (`framed_samples`): the same kind of generic requests about an
  everyday sentence or a short everyday conversation, asked inside the model's whole
  prompt framing (placeholders included, holding no media), so that it learns to find
  the words in a long prompt;
- **copying** (`copy_samples`): "Repeat exactly:" strings of random tokens, so every
  token of the vocabulary has been read and written once the stand-in is done.

The demo fits the tiny tokenizer to these texts (`flat_texts`) plus the list of distinct
words of the training split (a vocabulary, without the sentences), and the copying texts
make the stand-in read every token of that vocabulary, as a pretrained LM has.

None of these texts holds a task instruction of Nano-EmoX, a task identifier such as
`[Recognition]`, an answer format of the six tasks, any record's text or answer, or a
sentence SynthAffect's generator writes; `tests/test_demo.py` builds exactly what the
demo's stand-in reads and checks this. Learning the tasks, and SynthAffect's wording,
is left to P2E (adapters, fusion and phase 3's LoRA), as in the paper.
"""

from __future__ import annotations

import random
from typing import Sequence

import torch

from nanoemox.data.synth.vocab import ADJECTIVE, EMOTIONS, INTENSITIES, OV_WORDS, VALENCE
from nanoemox.processor import ASSISTANT, HUMAN

Sample = tuple[torch.Tensor, torch.Tensor]  # token ids, labels (-100 where no loss)

NAMES = ("Anna", "Ben", "Chloe", "David", "Emma", "Farid", "Grace", "Hugo", "Ines", "Jonas", "Kemi", "Liam")
CATEGORIES: dict[str, tuple[str, ...]] = {
    "colour": ("red", "blue", "green", "yellow", "purple", "orange", "grey", "brown"),
    "animal": ("dog", "cat", "horse", "sparrow", "rabbit", "goat", "fox", "owl"),
    "food": ("bread", "apple", "rice", "cheese", "soup", "carrot", "cake", "pasta"),
    "day of the week": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
    "piece of furniture": ("table", "chair", "sofa", "wardrobe", "shelf", "bed", "desk", "stool"),
    "feeling": tuple(sorted({ADJECTIVE[e] for e in EMOTIONS if e != "neutral"}
                            | {w for e in EMOTIONS if e != "neutral" for ws in OV_WORDS[e].values() for w in ws})),
}
# Distractor words: never feeling words, so that no request or answer lists emotion words
# side by side (the answer form of OV-MER); a feeling is only ever the one right choice.
PLAIN_WORDS = tuple(w for c, ws in CATEGORIES.items() if c != "feeling" for w in ws)
# Everyday topics of this module's own (none is a SynthAffect event).
TOPICS = ("the broken washing machine", "the school play", "the piano lesson", "the chess club", "the parking fine",
          "the cooking class", "the hiking weekend", "the painting course", "the quiz night", "the power cut",
          "the museum visit", "the train delay", "the football match", "the new bakery", "the library books",
          "the swimming race", "the dentist appointment", "the village fair", "the rainy holiday", "the lost keys")
_EVERYDAY = ("{name} talked about {topic} on {day}.", "On {day}, {name} told me about {topic}.",
             "{name} and {other} spent {day} on {topic}.", "Everyone at home was talking about {topic}.",
             "{name} wrote a long message about {topic}.", "{name} asked {other} about {topic} after lunch.",
             "{name} brought a {food} and a {colour} {thing} to {topic}.", "There was a {animal} near {topic}.")
# Ways of voicing a feeling, of this module's own (none is a SynthAffect remark).
EXPRESSIONS: dict[str, tuple[str, ...]] = {
    "anger": ("How dare they do that!", "I am fed up with it.", "This is so unfair!", "I could shout at someone."),
    "disgust": ("That is gross.", "It turned my stomach.", "How vile!", "I want nothing to do with that mess."),
    "fear": ("I am worried sick.", "It frightens me.", "I dread what might happen.", "My hands are shaking."),
    "happy": ("What a lovely day!", "I could dance!", "It went wonderfully.", "I am so glad it worked out."),
    "sad": ("I could cry.", "It is such a shame.", "I miss how it used to be.", "Nothing feels right today."),
    "surprise": ("I never saw it coming!", "What a shock!", "No way, really?", "I am stunned."),
}
# Ways of introducing an expression and its feeling; generic English, not a task's answer form.
_SAID = ('"{remark}" {name} said, {word}.', '{name} was {word}. "{remark}"',
         'Feeling {word}, {name} said: "{remark}"', 'When {name} said "{remark}", {pronoun} was {word}.')
_ABOUT = ("{name} felt {word} about {topic}.", "{topic_cap} left {name} {word}.",
          "After {topic}, {name} was {word}.")
_MEANING = ("Someone who is {word} feels {noun}.", "To be {word} is a form of {noun}.",
            "{noun_cap} can make a person {word}.")
_VALENCE = ("{noun_cap} is {kind} feeling.", "Most people find {noun} {kind_adj}.")
_FLAT = ('"{remark}" {name} said, without any feeling in {possessive} voice.',
         "{name} talked about {topic} calmly, showing no particular feeling.")
# Nouns for the seven classes, used only inside generic sentences.
_NOUN = {"anger": "anger", "disgust": "disgust", "fear": "fear", "happy": "happiness", "neutral": "calm",
         "sad": "sadness", "surprise": "surprise"}
# General English emotion words by class, as any dictionary or thesaurus lists them (single
# words only: what a pretrained LM knows about each word, never a sentence of SynthAffect's).
LEXICON: dict[str, tuple[str, ...]] = {
    "anger": ("angry", "annoyed", "annoys", "irritated", "irritating", "furious", "livid", "cross", "mad",
              "outraged", "fuming", "scream", "rage", "resentful", "exasperated", "indignant"),
    "disgust": ("disgusted", "disgusting", "distasteful", "off-putting", "revolting", "revolted", "repulsive",
                "gross", "vile", "nauseating", "sick", "loathing", "appalled", "repelled", "disapproving"),
    "fear": ("afraid", "scared", "nervous", "uneasy", "terrified", "frightened", "anxious", "worried", "panicky",
             "alarmed", "dread", "tense", "breathe", "fearful", "petrified", "jittery"),
    "happy": ("happy", "pleased", "glad", "delighted", "thrilled", "overjoyed", "cheerful", "smile", "joyful",
              "content", "elated", "moon", "best", "wonderful", "grateful", "proud"),
    "sad": ("sad", "unhappy", "down", "disappointed", "miserable", "heartbroken", "heart", "gloomy", "sorrowful",
            "depressed", "dejected", "tearful", "low", "blue", "grieving", "hurt"),
    "surprise": ("surprised", "astonished", "astonishing", "amazed", "stunned", "startled", "shocked", "expect",
                 "unexpected", "guard", "believe", "wow", "speechless", "taken aback", "dumbfounded", "curious"),
    "neutral": ("calm", "neutral", "steady", "even", "composed", "matter-of-fact", "plain", "flat"),
}
_LEXICON_FORMS = ("The word \"{word}\" goes with {noun}.", "\"{word}\" is a word about {noun}.",
                  "In a dictionary, \"{word}\" sits near \"{adjective}\".", "\"{word}\" and {noun}: {kind}.")
# Speech acts and what they are called: generic English of this module's own.
SPEECH_ACTS: dict[str, tuple[str, ...]] = {
    "thank": ("Thank you so much for the {food}, {other}.", "Many thanks for the lift to {topic}.",
              "I am grateful you came to {topic}, {other}."),
    "apologise": ("Sorry about the noise on {day}, {other}.", "I am sorry I was late for {topic}.",
                  "Please forgive me for missing {topic}."),
    "greet": ("Hi {other}, nice to see you.", "Good morning, {other}!", "Hello, {other}, how are things?"),
    "ask for help": ("Can you give me a hand with the {thing}, {other}?", "Could you lend me a {colour} pen?",
                     "Would you help me carry the {thing}?"),
    "praise": ("What a fine {food} that was, {other}!", "You did a brilliant job at {topic}, {other}."),
    "complain": ("The {thing} broke again, which is really annoying.", "{topic_cap} was a total mess."),
    "inform": ("{topic_cap} starts on {day}.", "The {thing} is in the hall now."),
}
_ACT_FORMS = ('"{line}" {name} said. {pronoun_cap} was {act_ing}.', '{name}: "{line}" That is {act_ing}.',
              'By saying "{line}", {name} was {act_ing}.')
_ACT_ING = {"thank": "thanking", "apologise": "apologising", "greet": "greeting", "ask for help": "asking for help",
            "praise": "praising", "complain": "complaining", "inform": "informing"}


def _tokens(tokenizer, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def plain(tokenizer, text: str) -> Sample:
    """A text to read whole: every token (and the end of text) is predicted."""
    ids = torch.tensor(_tokens(tokenizer, text) + [tokenizer.eos_token_id])
    return ids, ids.clone()


def turn(tokenizer, request: str, answer: str) -> Sample:
    """One generic instruction turn in the prompt framing of the processor; loss on the answer only."""
    prompt = _tokens(tokenizer, f"{HUMAN} {request}{ASSISTANT}")
    reply = _tokens(tokenizer, answer) + [tokenizer.eos_token_id]
    return torch.tensor(prompt + reply), torch.tensor([-100] * len(prompt) + reply)


def _fields(rng: random.Random) -> dict[str, str]:
    name = rng.choice(NAMES)
    female = NAMES.index(name) % 2 == 0
    topic = rng.choice(TOPICS)
    return dict(name=name, other=rng.choice([n for n in NAMES if n != name]), topic=topic,
                topic_cap=topic[0].upper() + topic[1:], day=rng.choice(CATEGORIES["day of the week"]),
                food=rng.choice(CATEGORIES["food"]), colour=rng.choice(CATEGORIES["colour"]),
                animal=rng.choice(CATEGORIES["animal"]), thing=rng.choice(CATEGORIES["piece of furniture"]),
                pronoun="she" if female else "he", possessive="her" if female else "his",
                obj="her" if female else "him")


def everyday_sentences(rng: random.Random, n: int) -> list[str]:
    """Plain statements about everyday topics (no feelings)."""
    return [rng.choice(_EVERYDAY).format(**_fields(rng)) for _ in range(n)]


def lexicon_sentences(rng: random.Random, n: int) -> list[str]:
    """What general English emotion words mean, and what everyday speech acts are called."""
    out = []
    for _ in range(n):
        if rng.random() < 0.6:
            emotion = rng.choice(EMOTIONS)
            word = rng.choice(LEXICON[emotion])
            kind = ("calm" if emotion == "neutral" else "pleasant" if VALENCE[emotion] > 0 else "unpleasant")
            out.append(rng.choice(_LEXICON_FORMS).format(word=word, noun=_NOUN[emotion], adjective=ADJECTIVE[emotion],
                                                         kind=kind))
        else:
            act = rng.choice(sorted(SPEECH_ACTS))
            fields = _fields(rng)
            line = rng.choice(SPEECH_ACTS[act]).format(**fields)
            out.append(rng.choice(_ACT_FORMS).format(line=line, act_ing=_ACT_ING[act],
                                                     pronoun_cap=fields["pronoun"].capitalize(), **fields))
    return out


def feeling_sentences(rng: random.Random, n: int) -> list[str]:
    """Generic sentences that use emotion words the way English does (this module's own expressions)."""
    out = []
    for _ in range(n):
        emotion, intensity = rng.choice(EMOTIONS), rng.choice(INTENSITIES)
        fields = _fields(rng)
        if emotion == "neutral":
            other = rng.choice([e for e in EMOTIONS if e != "neutral"])
            kind = rng.randrange(3)
            text = (rng.choice(_FLAT).format(remark=f"It was about {fields['topic']}.", **fields) if kind == 0 else
                    "{name} was calm. Nothing about {topic} moved {obj}.".format(**fields) if kind == 1 else
                    f'"{rng.choice(EXPRESSIONS[other])}" is not something a calm person would say.')
        else:
            word = rng.choice([ADJECTIVE[emotion], *OV_WORDS[emotion][intensity]])
            noun, valence = _NOUN[emotion], VALENCE[emotion]
            template = rng.choice((_SAID, _ABOUT, _MEANING, _VALENCE)[rng.randrange(4)])
            text = template.format(remark=rng.choice(EXPRESSIONS[emotion]), word=word, noun=noun,
                                   noun_cap=noun.capitalize(), kind="a pleasant" if valence > 0 else "an unpleasant",
                                   kind_adj="pleasant" if valence > 0 else "unpleasant", **fields)
        out.append(text[0].upper() + text[1:])
    return out


def everyday_conversation(rng: random.Random) -> list[dict[str, str]]:
    """Two to four turns of an everyday conversation between a speaker and a listener."""
    turns = []
    for i in range(rng.randint(2, 4)):
        role = "speaker" if i % 2 == 0 else "listener"
        text = rng.choice(everyday_sentences(rng, 3) + feeling_sentences(rng, 1))
        turns.append({"role": role, "text": text})
    return turns


def _words(sentence: str) -> list[str]:
    return [w.strip('.,!?"\'') for w in sentence.split() if w.strip('.,!?"\'')]


def generic_turns(texts: Sequence[str], rng: random.Random, n: int) -> list[tuple[str, str]]:
    """(request, answer) pairs of generic instruction following over the given sentences."""
    feelings = set(CATEGORIES["feeling"])
    pool = sorted((set(PLAIN_WORDS) | {w.lower() for t in texts for w in _words(t)}) - feelings)
    topics = list(TOPICS)
    out = []
    for _ in range(n):
        sentence = rng.choice(texts)
        words = _words(sentence)
        kind = rng.randrange(8)
        if kind == 0:
            out.append((f"Repeat this sentence exactly: {sentence}", sentence))
        elif kind == 1:
            out.append((f"What is the last word of this sentence? {sentence}", words[-1]))
        elif kind == 2:
            present = rng.choice(words).lower()
            options = rng.sample([w for w in pool if w not in {x.lower() for x in words}], 3) + [present]
            rng.shuffle(options)
            out.append((f"Sentence: {sentence}\nWhich of these words occurs in the sentence: "
                        f"{', '.join(options)}? Reply with the word.", present))
        elif kind == 3:
            category = rng.choice(sorted(CATEGORIES))
            right = rng.choice(CATEGORIES[category])
            others = [w for w in PLAIN_WORDS if w not in CATEGORIES[category]]
            options = rng.sample(others, 3) + [right]
            rng.shuffle(options)
            article = "an" if category[0] in "aeiou" else "a"
            out.append((f"Which one is {article} {category}: {', '.join(options)}?", right))
        elif kind == 5:
            category = rng.choice(sorted(c for c in CATEGORIES if c != "feeling"))
            right = rng.sample(CATEGORIES[category], rng.randint(1, 3))
            others = [w for w in PLAIN_WORDS if w not in CATEGORIES[category]]
            options = rng.sample(others, 5 - len(right)) + right
            rng.shuffle(options)
            out.append((f"List every {category} among these words, separated by commas: {', '.join(options)}.",
                        ", ".join(w for w in options if w in right)))
        elif kind == 7:
            about = [t for t in topics if t in sentence] or [words[-1]]
            out.append((f"Copy this sentence and mark what it is about with <topic> tags: {sentence}",
                        sentence.replace(about[0], f"<topic>{about[0]}</topic>", 1)))
        elif kind == 6:
            parts = [p.strip() + "." for p in " ".join(rng.sample(list(texts), 2)).replace("!", ".").replace("?", ".")
                     .split(".") if p.strip()]
            out.append(("Number the sentences of this text, one per line: " + " ".join(parts),
                        "\n".join(f"{i}. {p}" for i, p in enumerate(parts, 1))))
        else:
            about = [t for t in topics if t in sentence]
            if about:
                out.append((f"What is this sentence about? {sentence}", about[0]))
            else:
                out.append((f"How many words are in this sentence? {sentence}", str(len(words))))
    return out


def language_texts(seed: int = 0, sentences: int = 3000, feelings: int = 3000,
                   instructions: int = 3000) -> dict[str, list]:
    """The stand-in's reading, deterministic for a seed: everyday sentences, feeling sentences, generic turns.

    Nothing here depends on a corpus: the texts are the same for every SynthAffect corpus.
    "instructions" holds (request, answer) pairs.
    """
    rng = random.Random(seed)
    everyday = everyday_sentences(rng, sentences)
    feeling_texts = feeling_sentences(rng, feelings - feelings // 3) + lexicon_sentences(rng, feelings // 3)
    rng.shuffle(feeling_texts)
    return {"sentences": everyday, "feelings": feeling_texts,
            "instructions": generic_turns(everyday[:1000] + feeling_texts[:1000], rng, instructions)}


def flat_texts(texts: dict[str, list]) -> list[str]:
    """Every text of `language_texts` as the LM reads it (turns in the processor's framing).

    The tiny tokenizer is fitted to exactly these, so every token of its vocabulary is one
    the stand-in has read: a token it never saw would keep a random embedding that LoRA
    cannot train, unlike a real LM whose whole vocabulary was pre-trained.
    """
    return texts["sentences"] + texts["feelings"] + [f"{HUMAN} {q}{ASSISTANT}{a}" for q, a in texts["instructions"]]


def copy_samples(tokenizer, rng: random.Random, n: int, length: tuple[int, int] = (3, 12)) -> list[Sample]:
    """Generic copying over the whole vocabulary: "Repeat exactly:" random tokens, then the same tokens.

    A pretrained LM has read every token of its vocabulary in some context; texts alone
    leave many sub-word pieces unread (BPE keeps intermediate merges), and their random
    embeddings cannot be trained by LoRA later. Copying random token strings reads and
    writes each of them, and copying is a generic skill, not one of the six tasks.
    """
    special = set(tokenizer.all_special_ids)
    vocab = [i for i in range(len(tokenizer)) if i not in special]
    order: list[int] = []  # whole shuffled passes over the vocabulary, so every token comes early
    while len(order) < n * length[1]:
        order += rng.sample(vocab, len(vocab))
    head, tail = _tokens(tokenizer, f"{HUMAN} Repeat exactly: "), _tokens(tokenizer, ASSISTANT)
    out, pos = [], 0
    for _ in range(n):
        k = rng.randint(*length)
        body, pos = order[pos:pos + k], pos + k
        prompt, reply = head + body + tail, body + [tokenizer.eos_token_id]
        out.append((torch.tensor(prompt + reply), torch.tensor([-100] * len(prompt) + reply)))
    return out


def language_corpus(tokenizer, texts: dict[str, list], copies: int = 0, seed: int = 0) -> dict[str, list[Sample]]:
    """`language_texts`, tokenized: plain texts are read whole, turns learn their answer;
    with `copies`, that many copying samples over the whole vocabulary (`copy_samples`)."""
    corpus = {"sentences": [plain(tokenizer, t) for t in texts["sentences"]],
              "feelings": [plain(tokenizer, t) for t in texts["feelings"]],
              "instructions": [turn(tokenizer, q, a) for q, a in texts["instructions"]]}
    if copies:
        corpus["copying"] = copy_samples(tokenizer, random.Random(seed), copies)
    return corpus


def token_coverage(samples: dict[str, list[Sample]], sequences: Sequence[Sequence[int]]) -> float:
    """Share of the token occurrences in `sequences` (e.g. the task prompts and answers P2E
    will train on) whose token the stand-in has read in `samples`."""
    seen = {int(t) for kind in samples.values() for ids, _ in kind for t in ids}
    total = sum(len(seq) for seq in sequences)
    return sum(int(t) in seen for seq in sequences for t in seq) / max(1, total)


def framed_requests(text: str, history: Sequence[dict] | None, rng: random.Random) -> tuple[str, str]:
    """A generic (request, answer) about the words of a clip, asked in the prompt's framing."""
    words = _words(text)
    topics = [t for t in TOPICS if t in text]
    if history and rng.random() < 0.5:
        first = history[0]
        return rng.choice((("Who spoke first in the conversation?", first["role"]),
                           ("What was said first in the conversation?", first["text"])))
    kind = rng.randrange(4)
    if kind == 0:
        return "Repeat what is said, word for word.", text
    if kind == 1:
        return "What is the last word that is said?", words[-1]
    if kind == 2 and topics:
        return "What is the talk about?", topics[0]
    present = rng.choice(words).lower()
    pool = sorted(set(PLAIN_WORDS) - {w.lower() for w in words})
    options = rng.sample(pool, 3) + [present]
    rng.shuffle(options)
    return f"Which of these words is said: {', '.join(options)}? Reply with the word.", present


def framed_samples(processor, rng: random.Random, n: int) -> list[Sample]:
    """Generic requests about everyday words inside the processor's whole prompt framing.

    The prompt is the one P2E uses up to the instruction (the modality introductions with
    their placeholder tokens, then a subtitle or a conversation so far), holding an
    everyday sentence or conversation of this module's own, followed by a generic request
    from `framed_requests` instead of a task instruction; the placeholders hold the LM's
    own embeddings (no media). So the stand-in learns to find the words in a long
    prompt, as a pretrained LM reads long contexts, without meeting any of the six tasks.
    """
    out = []
    for _ in range(n):
        if rng.random() < 0.5:  # a subtitle alone, as most tasks frame it
            text, history = rng.choice(everyday_sentences(rng, 2) + feeling_sentences(rng, 1)), None
        else:  # a conversation so far, as ERG frames it
            *history, last = everyday_conversation(rng)
            text = last["text"]
        request, answer = framed_requests(text, history, rng)
        prompt = processor.framed_prompt_ids(text, history, request)
        reply = processor.text_ids(answer) + [processor.tokenizer.eos_token_id]
        out.append((torch.tensor(prompt + reply), torch.tensor([-100] * len(prompt) + reply)))
    return out
