"""Wording of SynthAffect: subtitles, emotional remarks, cue descriptions, reasons, dialogues.

Every clip is about one everyday event. Its subtitle is a speech act about that
event (emotionally flat wording); only when the words carry the emotion is an
emotional remark appended. Reasons (ERI) name exactly the cues the clip shows, and
the empathetic-dialogue targets (ERG) follow from the event and the emotion.
"""

from __future__ import annotations

from dataclasses import dataclass

from nanoemox.data.synth.vocab import ADJECTIVE, MODALITIES


@dataclass(frozen=True)
class Event:
    key: str
    topic: str       # noun phrase used inside sentences
    opener: str      # the speaker's first line in the dialogue history
    scenario: str    # ERG event_scenario


EVENTS: tuple[Event, ...] = (
    Event("exam", "the exam results", "I finally got my exam results back this morning.",
          "The speaker has just received the results of an exam."),
    Event("interview", "the job interview", "I had that job interview I mentioned last week.",
          "The speaker recently went to a job interview."),
    Event("flat", "the new flat", "We moved into the new flat over the weekend.",
          "The speaker has just moved into a new flat."),
    Event("friend", "the visit from an old friend", "An old school friend turned up at my door yesterday.",
          "An old friend of the speaker paid an unexpected visit."),
    Event("car", "the car repair", "The garage called me about the car this afternoon.",
          "The speaker heard back from the garage about a car repair."),
    Event("concert", "the concert", "I went to the concert on Saturday night.",
          "The speaker went to a concert at the weekend."),
    Event("meeting", "the team meeting", "The manager announced the new plan at the team meeting.",
          "A new plan was announced at the speaker's team meeting."),
    Event("dinner", "the family dinner", "We had the big family dinner last night.",
          "The speaker's family got together for a large dinner."),
    Event("letter", "the letter from the council", "A letter from the council arrived today.",
          "The speaker received an official letter from the council."),
    Event("garden", "the neighbour's dog", "My neighbour's dog got into our garden again.",
          "A neighbour's dog keeps getting into the speaker's garden."),
    Event("birthday", "the birthday party", "We had my birthday party on Friday.",
          "The speaker's birthday took place a few days ago."),
    Event("trip", "the trip to the coast", "We just got back from the trip to the coast.",
          "The speaker has just come back from a trip to the coast."),
)

EVENTS_BY_KEY: dict[str, Event] = {e.key: e for e in EVENTS}

# Speech acts as flat statements about the event; "{topic}" is filled in.
ACT_TEMPLATES: dict[str, tuple[str, ...]] = {
    "remark": ("Look at how they handled {topic}.", "So this is what came of {topic}.",
               "Here is how {topic} went."),
    "thank": ("Thank you for asking about {topic}.", "Thanks for helping me with {topic}."),
    "apologise": ("Sorry I did not tell you about {topic} sooner.", "I apologise for the mix-up over {topic}."),
    "greet": ("Hello there, I wanted to catch you about {topic}.", "Hi, good to see you, it is about {topic}."),
    "ask for help": ("Could you help me sort out {topic}?", "Would you give me a hand with {topic}?"),
}

# Emotional remarks appended when the words carry the emotion, per intensity.
EMOTION_REMARKS: dict[str, dict[str, tuple[str, ...]]] = {
    "anger": {"mild": ("That really annoys me.", "I am getting irritated by all this."),
              "strong": ("This makes me absolutely furious!", "I am so angry I could scream!")},
    "disgust": {"mild": ("Honestly, it is a bit distasteful.", "I find that rather off-putting."),
                "strong": ("Ugh, that is completely revolting.", "It is disgusting, I feel sick thinking of it.")},
    "fear": {"mild": ("I am a little nervous about it.", "It makes me uneasy."),
             "strong": ("I am terrified of what comes next.", "I am so scared I can hardly breathe.")},
    "happy": {"mild": ("I am quite pleased, actually.", "That made me smile."),
              "strong": ("I am over the moon about it!", "This is the best news, I am thrilled!")},
    "neutral": {"mild": ("",), "strong": ("",)},
    "sad": {"mild": ("It leaves me a bit down.", "I feel somewhat disappointed."),
            "strong": ("It breaks my heart.", "I feel so miserable about it.")},
    "surprise": {"mild": ("Well, I did not expect that.", "That caught me off guard a little."),
                 "strong": ("Wow, I cannot believe it!", "What? That is astonishing!")},
}

FACE_CUES: dict[str, dict[str, str]] = {
    "anger": {"mild": "the lowered, drawn-together brows and bared teeth",
              "strong": "the sharply lowered brows, bared teeth and flushed red face"},
    "disgust": {"mild": "the wrinkled nose and lopsided mouth",
                "strong": "the wrinkled nose, narrowed eyes and lip curled up on one side"},
    "fear": {"mild": "the raised inner brows and widened eyes",
             "strong": "the wide staring eyes, raised inner brows and stretched open mouth"},
    "happy": {"mild": "the gentle smile and rosy cheeks",
              "strong": "the broad open smile, rosy cheeks and creased eyes"},
    "neutral": {"mild": "the relaxed, still face", "strong": "the relaxed, still face"},
    "sad": {"mild": "the downturned mouth and drooping eyes",
            "strong": "the deeply downturned mouth, raised inner brows and a tear"},
    "surprise": {"mild": "the raised brows and rounded open mouth",
                 "strong": "the high brows, very wide eyes and dropped jaw"},
}

VOICE_CUES: dict[str, dict[str, str]] = {
    "anger": {"mild": "the loud, sharp voice", "strong": "the loud, harsh, clipped voice"},
    "disgust": {"mild": "the low, drawn-out voice", "strong": "the low, rough, drawn-out voice"},
    "fear": {"mild": "the high, hurried voice", "strong": "the high, trembling, breathy voice"},
    "happy": {"mild": "the bright, lively voice", "strong": "the high, rising, quick voice"},
    "neutral": {"mild": "the even, steady voice", "strong": "the even, steady voice"},
    "sad": {"mild": "the soft, low voice", "strong": "the quiet, low, slow and falling voice"},
    "surprise": {"mild": "the rising voice", "strong": "the sharply rising exclamations"},
}

NON_CUE_NAMES = {"face": "the face", "voice": "the voice", "text": "the words"}

GOALS: dict[str, str] = {
    "anger": "Acknowledge the frustration and help the speaker cool down.",
    "disgust": "Accept the speaker's distaste and steer the talk somewhere better.",
    "fear": "Reassure the speaker and offer steady support.",
    "happy": "Share the speaker's joy and encourage them.",
    "neutral": "Keep the conversation going with friendly interest.",
    "sad": "Comfort the speaker and show understanding.",
    "surprise": "Share the speaker's amazement and ask what happened next.",
}

REPLIES: dict[str, tuple[str, ...]] = {
    "anger": ("I can see why {topic} has you so worked up; what would help right now?",
              "That sounds really frustrating. Let us take a breath and look at {topic} together."),
    "disgust": ("That does sound unpleasant. Shall we talk about something nicer than {topic}?",
                "No wonder {topic} put you off; I would feel the same."),
    "fear": ("It is okay to feel scared about {topic}; I am here with you.",
             "Try not to worry too much about {topic}, we will face it together."),
    "happy": ("That is wonderful news about {topic}! I am so glad for you.",
              "How lovely! You must be proud of how {topic} turned out."),
    "neutral": ("I see. Tell me a bit more about {topic}.",
                "Thanks for filling me in on {topic}; what happens next?"),
    "sad": ("I am so sorry about {topic}; it is fine to feel down, I am here for you.",
            "That must be hard. Do you want to talk about {topic}?"),
    "surprise": ("Wow, I did not see that coming either! What happened with {topic}?",
                 "Really? That is quite a twist for {topic}. Tell me everything!"),
}

HISTORY_PROMPTS: tuple[str, ...] = ("Oh really? How did that go?", "What happened?", "Go on, tell me more.")
LISTENER_OPENERS: tuple[str, ...] = ("Hey, how have you been?", "You look like you have news.", "How was your week?")


def feeling(emotion: str, intensity: str) -> str:
    """'slightly sad', 'very angry' or 'calm and neutral'."""
    if emotion == "neutral":
        return "calm and neutral"
    return ("slightly " if intensity == "mild" else "very ") + ADJECTIVE[emotion]


def subtitle(act: str, event: Event, template_index: int, remark: str) -> str:
    """The clip's subtitle: the speech act about the event, then the emotional remark if any."""
    templates = ACT_TEMPLATES[act]
    text = templates[template_index % len(templates)].format(topic=event.topic)
    return f"{text} {remark}".strip()


def _join(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def _cue_phrase(modality: str, emotion: str, intensity: str, remark: str) -> str:
    if modality == "face":
        return FACE_CUES[emotion][intensity]
    if modality == "voice":
        return VOICE_CUES[emotion][intensity]
    return f'the words "{remark}"' if remark else "the matter-of-fact words"


def reason(emotion: str, intensity: str, cues: list[str], remark: str, conflict: bool) -> str:
    """ERI target: a sentence naming the cues that carry the emotion (and the neutral rest)."""
    phrases = [_cue_phrase(m, emotion, intensity, remark) for m in cues]
    if conflict:
        return (f"Despite the polite smile on the face, it is clear from {_join(phrases)} that the "
                f"speaker is really {feeling(emotion, intensity)}.")
    sentence = f"Judging by {_join(phrases)}, the speaker is {feeling(emotion, intensity)}"
    rest = [NON_CUE_NAMES[m] for m in MODALITIES if m not in cues]
    if rest and emotion != "neutral":
        verb = "stays" if len(rest) == 1 else "stay"
        sentence += f", while {_join(rest)} {verb} neutral"
    return sentence + "."


def dialogue_history(event: Event, long_form: bool, prompt_index: int) -> list[dict[str, str]]:
    """Earlier turns: the speaker brings up the event and the listener asks about it."""
    turns = []
    if long_form:
        turns.append({"role": "listener", "text": LISTENER_OPENERS[prompt_index % len(LISTENER_OPENERS)]})
    turns.append({"role": "speaker", "text": event.opener})
    turns.append({"role": "listener", "text": HISTORY_PROMPTS[prompt_index % len(HISTORY_PROMPTS)]})
    return turns


def empathy_target(event: Event, emotion: str, reply_index: int) -> dict[str, str]:
    """ERG target: event scenario, speaker emotion, its cause, the goal of the reply, the reply."""
    if emotion == "neutral":
        cause = f"The speaker talks about {event.topic} without strong feelings."
    else:
        cause = f"The speaker feels {ADJECTIVE[emotion]} because of {event.topic}."
    replies = REPLIES[emotion]
    return {
        "event_scenario": event.scenario,
        "speaker_emotion": emotion,
        "emotion_cause": cause,
        "goal_to_response": GOALS[emotion],
        "reply": replies[reply_index % len(replies)].format(topic=event.topic),
    }
