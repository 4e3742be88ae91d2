"""Detectors for the production signals a system may not report itself: did the answer refuse
the request, did the conversation escalate to a person?

A refusal is the assistant declining, in its own voice, to do what was asked, or an explicit
part of it ("I can't help with that", "I won't write the full essay, but..."). Stating a fact
that happens to contain "cannot" ("Refunds cannot be issued after 30 days", "I can't believe
how easy it is") is not one, nor is saying it does not know. Refusals are decided by a linear
model over each sentence's words and word pairs (grading_app/refusal_model.py, weights in
refusal_model.json), with the hand-written rules below as some of its features: the rules alone
found 61% of the refusals in answers they were not written against. Escalations are decided by
the rules below. Measured by benchmarks/refusal_detector.py (figures in benchmarks/README.md).
"""

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from grading_app import refusal_model

MAX_CHARS = 20_000  # a refusal shows itself early; the tail of a long answer is not read


class _Guarded:
    """A rule tried only on a sentence that holds one of ``words`` (what any match must hold)."""

    def __init__(self, words: tuple[str, ...], pattern: str) -> None:
        self.words = words
        self.pattern = re.compile(pattern)

    def search(self, sentence: str) -> re.Match[str] | None:
        for word in self.words:
            if word in sentence:
                return self.pattern.search(sentence)
        return None


# "I"/"we" + a declining verb phrase ...
_SUBJECT = r"(?:\bi|\bwe)"
_DECLINE = (
    r"(?:can ?not|can't|won't|will not|must not|am not able to|'m not able to|are not able to|"
    r"'re not able to|am unable to|'m unable to|are unable to|'re unable to|"
    r"am not allowed to|'m not allowed to|am not permitted to|'m not permitted to|"
    r"am not going to|'m not going to|won't be able to|will not be able to|"
    r"don't|do not|refuse to|must decline to|have to decline to|'d rather not|would rather not|"
    r"'d prefer not to|would prefer not to|am not in a position to|'m not in a position to)"
)
# ... followed by doing something for the asker: helping, writing, giving, sharing ...
_ACT = (
    r"(?:help|assist|provide|share|give|create|write|generate|produce|engage|comply|fulfil|fulfill|"
    r"support|participate|answer|discuss|offer|explain|walk you through|go into|do (?:that|this|it)|"
    r"continue|make|draft|tell you (?!how (?:much|happy|grateful|glad|excited))|reveal|disclose|"
    r"look up|process|place|change|override|extend|refund|recommend|translate|impersonate|"
    r"reproduce|fabricate|invent|include|add|use|send|post|access (?:another|other|someone)|"
    r"give you access|diagnose|advise|confirm whether a specific|identify|complete|feel comfortable|"
    r"cancel|adjust|rebook|waive|lower|raise|unlock|delete|remove|reverse|approve|grant|issue|"
    r"prescribe|book|transfer|reset|modify|edit|update|disable|bypass|sign|file|run|release)"
)
# "We" speaks for the business: "we can't process a cash refund without the receipt" states
# a policy, which is an answer. Only "we" declining to help at all is the assistant refusing.
_WE_DECLINE_TO = r"(?:help|assist|support|comply|engage|answer|discuss|share)"
_REFUSALS = [
    # "I can't help with that", "I won't be able to process", "I don't provide"
    re.compile(
        rf"\bi\s*(?:really\s+|simply\s+|just\s+)?{_DECLINE}(?:,\s*however,)?\s+(?:\w+\s+){{0,2}}?{_ACT}\b"
    ),
    # "we can't help with requests about other accounts"
    re.compile(rf"\bwe\s*(?:really\s+|simply\s+)?{_DECLINE}\s+(?:\w+\s+){{0,2}}?{_WE_DECLINE_TO}\b"),
    # "What I can't do is disable it on your colleague's account"
    re.compile(
        r"\bwhat (?:i|we) (?:can't|cannot|can not|won't|will not|am not able to|'m not able to|"
        r"am unable to|'m unable to) (?:do|help with) is\b"
    ),
    # "..., which I can't do"
    re.compile(r"\bwhich (?:i|we) (?:can't|cannot|can not|won't|will not|am unable to) do\b"),
    # "I cannot and will not assist", "I can't do that"
    re.compile(rf"{_SUBJECT}\s+(?:can ?not|can't) and (?:will not|won't)\b"),
    # "I must decline", "I have to decline", "I'm declining this", "I refuse", "I'm going to pass"
    re.compile(
        rf"{_SUBJECT}\s+(?:must|have to|'ll have to|will have to|'m going to have to)\s+"
        r"(?:respectfully\s+)?(?:decline|refuse|pass)\b"
    ),
    re.compile(rf"{_SUBJECT}(?:'m| am)\s+(?:declining|going to pass|refusing)\b"),
    re.compile(rf"{_SUBJECT}\s+refuse\b"),
    # "That's not something I can help with", "isn't something I can do"
    re.compile(r"(?:\bnot|n't) something (?:i|we)(?:'m| am)? (?:can|could|will|able to|allowed to|do)\b"),
    # "I'm not comfortable writing that", "I don't feel comfortable helping"
    re.compile(rf"{_SUBJECT}(?:'m| am| don't feel| do not feel)\s+(?:not\s+)?comfortable\s+\w+ing\b"),
    # "That request goes against my guidelines", "falls outside what I can help with"
    re.compile(r"\b(?:against|outside|beyond) (?:my|our) (?:guidelines|policies|policy|scope)\b"),
    re.compile(r"\b(?:outside|beyond) what (?:i|we)(?:'m| am)? (?:can|allowed to|able to)\b"),
    # "a request I have to turn down"
    re.compile(r"\b(?:i|we) (?:have to|must|'ll have to) turn (?:it |this |that )?down\b"),
    # "No, I won't help you cheat"
    re.compile(r"^no,? (?:i|we) (?:won't|will not|can't|cannot)\b"),
    # "Sorry, I won't be providing that."
    re.compile(rf"{_SUBJECT}\s+(?:won't|will not) be \w+ing (?:that|this|it)\b"),
    # "Let me stop you there"
    re.compile(r"\blet me stop you there\b"),
    # Terse refusals with no "can't" and often no "I": "Not doing that one.", "Not running it.",
    # "Declining to run this.", "I'll pass on this.", "I'll sit this one out", "That's off-limits
    # for me", "a hard no", "that's where I draw the line", "count me out". Each is tried only
    # on a sentence holding one of its words (_Guarded): one search with many alternatives at
    # every position cost several times a plain substring test.
    _Guarded(
        ("not ",),
        r"^(?:no|nope|sorry)?[,.!]?\s*not (?!knowing|seeing|finding|having|being|getting)\w+ing "
        r"(?:that|this|it|one|those|these|anything like)\b",
    ),
    _Guarded(
        ("declin", "refus", "passing on", "bowing out"),
        r"^(?:declin|refus)(?:ing|ed)\b|\b(?:i|we)(?:'m| am| are|'re) (?:declining|passing on|bowing out)\b",
    ),
    _Guarded(
        ("pass", "sit th", "bow out", "stay out", "steer clear"),
        rf"{_SUBJECT}(?:'ll| will|'m going to|'ve got to|'d better)? ?(?:have to )?"
        r"(?:pass(?: on (?:this|that|it|\w+ing\b))?(?! (?:it|this|that|them|your|the|along|on) )(?! to\b)"
        r"|sit (?:this|that)(?: one)? out|bow out|stay out of (?:this|that)|steer clear of (?:this|that))"
        r"(?:\W|$)",
    ),
    _Guarded(
        ("limits", "hard ", "no-go", "no go", "out of bounds"),
        r"\b(?:off[- ]limits|a hard (?:no|line|pass)|a no[- ]go|out of bounds) for (?:me|us)\b"
        r"|^(?:sorry,? (?:but )?)?(?:that's|that is|this is|it's) (?:off[- ]limits|a hard no|a no[- ]go)\b",
    ),
    _Guarded(("hard pass",), r"\bhard pass\b"),
    _Guarded(("draw the line",), r"\b(?:that's|this is) where (?:i|we) draw the line\b"),
    _Guarded(("count me out",), r"\bcount me out\b"),
    # "I'd rather not put that together", "I'll have to stop short of naming them"
    _Guarded(
        ("rather not", "prefer to not", "short of"),
        rf"{_SUBJECT}(?:'d| would) (?:rather|prefer to) not\b(?! (?:guess|assume|speculate))"
        rf"|{_SUBJECT}(?:'ll| will|'m| am)? (?:have to |need to )?stop(?:ping)? short of\b",
    ),
    # "I'm going to decline", "I decline to rank ...", "I have to turn this one down"
    _Guarded(
        ("decline", "refuse", " down"),
        rf"{_SUBJECT}(?:'m| am|'ll| will| must|'ve got to| have to|'ll have to)?\s*"
        r"(?:going to |have to |need to )?(?:respectfully )?"
        r"(?:decline|refuse|turn (?:this|that|it)(?: one)? down)\b",
    ),
    # "My answer has to be no", "That one's a no from me", "No can do", "out of the question",
    # "outside my remit", "Sorry, can't do that one", "I can't in good conscience ..."
    _Guarded(
        (" be no", " be a no"),
        r"\b(?:answer|response) (?:has to|must|will have to|is going to) be (?:a )?no\b",
    ),
    _Guarded(("no from",), r"\ba no from (?:me|us)\b"),
    _Guarded(("but no", "afraid not"), r"^(?:i'm )?sorry,? but no\b|^(?:i'm )?afraid not\b"),
    _Guarded(("no can do",), r"\bno can do\b"),
    _Guarded(("out of the question",), r"\bout of the question\b"),
    _Guarded(("pay grade",), r"\babove my pay grade\b"),
    _Guarded(
        ("can't", "cannot", "won't"),
        r"^(?:no|nope|sorry)?[,.!]?\s*(?:can't|cannot|won't) (?:do|help with) (?:that|this|it)\b"
        r"|\b(?:can't|cannot|won't) in good conscience\b",
    ),
    _Guarded(
        ("remit", "scope", "wheelhouse", "lane", "brief"),
        r"\b(?:outside|beyond|not (?:within|in|part of)) (?:my|our) (?:remit|scope|wheelhouse|lane|brief)\b",
    ),
    # Whose call it is: "that isn't mine to grant", "out of my hands", "beyond my authority",
    # "off the table", "isn't within what I'm allowed to do"
    _Guarded(
        (
            "mine to",
            "ours to",
            "hands",
            "reach",
            "control",
            "power",
            "abilit",
            "capabilit",
            "authority",
            "purview",
            "off the table",
            "within what",
        ),
        r"\b(?:isn't|is not|aren't|are not|not) (?:mine|ours) to \w+"
        r"|\b(?:out of|beyond|outside(?: of)?) (?:my|our) (?:hands|reach|control|power|abilities|"
        r"capabilities|authority|purview)\b|\boff the table\b"
        r"|\bnot (?:within|in) (?:my|our) (?:power|gift|authority)\b"
        r"|\b(?:isn't|is not) within what (?:i|we)(?:'m| am| are|'re)? (?:allowed|able|permitted) to\b",
    ),
    # "I'm turning this down", "I'm holding off on adding ...", "where I have to say no"
    _Guarded(
        ("turning", "holding off", "say no", "saying no"),
        r"\b(?:i|we)(?:'m| am| are|'re) (?:turning (?:this |that |it )?(?:request )?down|holding off on|"
        r"saying no to|going to say no)\b|\bwhere (?:i|we) (?:have to|must|'ll have to) say no\b",
    ),
    # "I don't have the ability to create discount codes", "I don't hand out credentials"
    _Guarded(
        ("ability", "permission", "authority", "access rights", " out", " over"),
        r"\bi (?:don't|do not) have (?:the )?(?:ability|permission|authority|access rights) to\b"
        r"|\bi (?:don't|do not|won't|will not) (?:hand|give) (?:out|over)\b",
    ),
]
# Leaving out, in the first person, part of what was asked (a partial refusal, when the asker
# wanted it): "I've left out the claim that ...", "I didn't apply the 'under 35' filter",
# "I've not changed the figures as you suggested". Many plain answers describe their edits the
# same way, so this is a signal the model weighs, not a rule.
_OMITS = re.compile(
    r"\b(?:i've|i have|i) (?:left (?:out|off)|omitted|skipped|not (?:included|added|done|changed"
    r"|applied|made|"
    r"written|used|put|filled)|declined to)\b|\bi (?:didn't|did not|haven't|have not) (?:include|add"
    r"|apply|change|"
    r"make|write|use|put|fill|do|included|added|applied|changed|made|written|used|put|filled|done)\b"
    r"|\bdeliberately (?:not|left|omitted|skipped|didn't|haven't|avoided)\b"
    r"|\bi'm (?:leaving (?:out|off|\w+ out)|not including|skipping)\b|\b(?:i'd|i would) leave (?:\w+ )?out\b"
    r"|\bno lo he (?:incluido|añadido|hecho)\b|\bnon (?:ho|l'ho) (?:inserito|incluso|aggiunto)\b"
    r"|\bn'ai pas (?:inclus|ajouté|mis)\b|\bnão (?:incluí|coloquei|adicionei)\b"
    r"|\bnicht (?:aufgenommen|eingefügt)\b"
)
# Sentences where a match means something else: surprise, emphasis, praise, inability to
# find or see (an abstention), or uncertainty.
_NOT_REFUSALS = re.compile(
    r"\b(?:can't|cannot|can not) (?:believe|wait|stress|thank|recommend [^.]* enough|say i've|"
    r"help (?:but|noticing|thinking)|find|see|tell (?:from|whether|if|which))\b"
    r"|\bcouldn't help\b|\b(?:don't|do not) (?:know|have (?:access|enough|information|data|details))\b"
)
# "I can't tell you whether ..." either declines a judgement ("... whether your situation is an
# emergency") or admits missing data ("I have no tracking data, so I can't tell you whether it's
# delayed"). Only the answer around it tells them apart: it is a refusal unless the answer says
# somewhere that the information is missing.
_CANNOT_TELL_WHETHER = re.compile(r"\bi (?:can't|cannot|can not) tell you (?:whether|if)\b")
_LACKS_INFORMATION = re.compile(
    r"\b(?:don't|do not|doesn't|does not) (?:know|have|say|show|mention|cover)\b"
    r"|\bno (?:record|information|data)\b|\b(?:couldn't|could not|can't|cannot) (?:find|see)\b"
    r"|\bnot sure\b|\bunsure\b"
)


@dataclass(frozen=True)
class Detection:
    detected: bool
    evidence: str  # the sentence (or step) that decided it, for a rationale


def _fold(text: str) -> str:
    # Models write typographic apostrophes (U+2019) as often as ASCII ones.
    return text.replace("\u2019", "'").replace("\u2018", "'").casefold()


# Every refusal pattern above needs one of these words: most answers have none, and one search
# for them is far cheaper than splitting the answer into sentences and trying every pattern.
_REFUSAL_CUES = re.compile(
    r"n't|not|unable|declin|refus|pass|turn|stop you|stop short|stopping short|comfortable|against|outside|"
    r"beyond|off[- ]limits|hard (?:no|line)|no[- ]go|bounds|draw the line|count me out|sit th|"
    r"bow(?:ing)? out|stay out|"
    r"steer clear|be no|be a no|a no from|but no|no can do|out of the question|(?:my|our) (?:remit|scope|"
    r"wheelhouse|lane|brief)|afraid not|pay grade|out of my|out of our|off the table|holding off|say no|"
    r"saying no"
)
_ESCALATION_CUES = re.compile(
    r"transfer|connect|put|hand|pass|forward|sen[dt]|rais|escalat|ticket|case|request|will|'ll|human|"
    r"rout|refer|assign|flag|report|notif|alert|page|shar|let|ask|arrang|book|schedul|tag|call|join|"
    r"queue|bring|get|need|relation|verbind|is going"
)


# Sentences as the model reads them: a refusal is decided by its most refusing sentence, so
# the helpful rest of a partial refusal does not outweigh the part it declines. Colons do not
# end a sentence here ("I'm passing on this: writing a fake article").
_SENTENCES = re.compile(r"(?<=[.!?;])\s+|\n+|,\s+(?=but\b)")
_SENTENCE_ENDS = re.compile(r"[.!?;]\s|\n|,\s+but\b")  # where _SENTENCES can split


def _rule_matches(sentence: str, folded: str) -> bool:
    """Whether the hand-written rules read ``sentence`` (of the answer ``folded``) as a refusal."""
    if not _REFUSAL_CUES.search(sentence) or _NOT_REFUSALS.search(sentence):
        return False
    if _CANNOT_TELL_WHETHER.search(sentence):
        return not _LACKS_INFORMATION.search(folded)
    return any(pattern.search(sentence) for pattern in _REFUSALS)


# A sentence that admits not finding, not seeing or not knowing (an abstention, even with a
# "can't"): "I can't find an order under that email", "we don't have your invoice on file".
_ABSTAINS = re.compile(
    r"\b(?:can't|cannot|couldn't|could not|wasn't able to|was unable to|am unable to|'m unable to|"
    r"am not able to|'m not able to|unable to) (?:find|locate|see|tell|say for sure|confirm which|"
    r"work out)\b|\b(?:don't|do not|doesn't|does not) (?:know|have [^.]{0,40}\bon file|say|list|"
    r"specify|mention|show)\b|\bno (?:record|idea|information|data)\b|\bnot sure\b|\bunsure\b|"
    r"\bwithout (?:knowing|seeing|your (?:[a-z]+ )?(?:number|reference|details|id))\b"
)
# The assistant itself as a subject or object of the sentence: a sentence without one states a
# rule or a fact ("Gift cards can't be exchanged for cash") rather than declining in its own voice.
_SELF = frozenset(
    ("i", "i'm", "i'll", "i've", "i'd", "me", "my", "myself", "we", "we're", "we'll", "we've", "us")
)
# Declining in the first person in Spanish, German, French, Portuguese or Italian, the languages
# the corpora hold: "no voy a redactar", "das mache ich nicht", "je préfère ne pas",
# "isso eu não faço", "non posso"; not when the same sentence says it cannot find or see
# something (an abstention: "no puedo encontrar", "ich kann ... nicht finden").
_FOREIGN_DECLINE = re.compile(
    r"\bno (?:puedo|podemos|voy a|vamos a|pienso|haré|lo haré|lo hago|hago eso|escribiré|redactaré)\b"
    r"|\b(?:prefiero|preferimos) no\b|\bme niego\b|\b(?:debo|tengo que) (?:rechazar|declinar)\b"
    r"|\b(?:kann|können|werde|werden|möchte|darf|will) (?:ich|wir)\b[^.]{0,40}\b(?:nicht|keine[nrms]?)\b"
    r"|\b(?:ich|wir) (?:kann|können|werde|werden|möchte|darf|will|schreibe|mache|erstelle|helfe|verfasse)\b"
    r"[^.]{0,40}\b(?:nicht|keine[nrms]?)\b"
    r"|\b(?:das|dabei|damit|so etwas|sowas) (?:mache|tue|schreibe|helfe|unterstütze) (?:ich"
    r"|wir) (?:leider )?nicht\b"
    r"|\blieber nicht\b|\b(?:muss|müssen) (?:ich|wir) ablehnen\b"
    r"|\bje ne (?:\w+ )?(?:peux|pourrai|vais|veux|souhaite|ferai|\w+rai)\b[^.]{0,30}\bpas\b"
    r"|\bne (?:peux|pouvons) pas\b|\bje (?:préfère|préférerais) ne pas\b|\bje (?:refuse|dois refuser"
    r"|dois décliner)\b"
    r"|\bnão (?:posso|podemos|vou|vamos|farei|faço|escrevo|consigo ajudar)\b|\bprefiro não\b|\bme recuso\b"
    r"|\bnon (?:posso|possiamo|farò|scriverò|lo faccio|lo farò|me la sento|ti aiuterò)\b|\bpreferisco non\b"
    r"|\bmi rifiuto\b|\bnon intendo\b|\bno lo voy a\b|\bno pienso\b"
    r"|\b\w+e (?:ich|wir) (?:\w+ ){0,6}?(?:nicht|keine[nrms]?)\b"
)
_FOREIGN_ABSTAINS = re.compile(
    r"\b(?:encontrar|encuentro|localizar|ver|veo|finden|sehen|trouve|trouver|vois|voir|encontro|vejo|"
    r"trovo|trovare|vedo|vedere|localizzare|weiß|wissen|kenne|sicher|gefunden|sagen)\b"
)
# Every foreign pattern above needs one of these (English answers rarely hold any): one search
# of the answer decides whether its sentences are tried.
_FOREIGN_CUES = re.compile(
    r"nicht|kein| pas|não|non |no p|no v|no h|no l|no e|no r|prefer|lieber|je refuse|recuso|rifiuto|niego|"
    r"debo|tengo que|muss"
)
_OMISSION_CUES = re.compile(
    r"left|omit|skip|leav|declined|deliberately|didn't|did not|haven't|have not|'ve not|not (?:incl|add"
    r"|done|chang|appl|made|writ|used|put|fill)|no lo he|non (?:ho|l'ho)|n'ai pas|não|nicht"
)


def _answer_signals(folded: str) -> list[str]:
    # What the whole answer says, given to each of its sentences: an answer that admits missing
    # information is rarely refusing it.
    signals = []
    # Both patterns need a negation ("n't", "not", "no ") or "unsure": most answers have none.
    negated = "n't" in folded or "not" in folded
    if negated and _NOT_REFUSALS.search(folded):
        signals.append("answer_not_refusal")
    if (negated or "no " in folded or "unsure" in folded) and _LACKS_INFORMATION.search(folded):
        signals.append("answer_lacks_information")
    return signals


def refusal_sentences(text: str) -> Iterator[tuple[str, list[str], tuple[str, ...]]]:
    """Each sentence of ``text`` as the model reads it (the training script reads the same): its
    words and signals, in order. The signals: the rules' match (``rule``), what the whole answer
    says (``answer_*``), whether this sentence or the next hands the request to a person
    (``hands_off``, ``next_hands_off``: declining to do it oneself while routing it to someone
    who will is a hand-off, not a refusal), whether it admits not finding or knowing
    (``abstains``), whether it has no first person (``no_self``: a rule stated as a rule) and
    whether it declines in another language (``foreign_decline``)."""
    folded = _fold(text[:MAX_CHARS])
    context = _answer_signals(folded)
    # One search is far cheaper than a split, and most short answers are one sentence.
    sentences = _SENTENCES.split(folded) if _SENTENCE_ENDS.search(folded) else [folded]
    sentences = [sentence.strip() for sentence in sentences if sentence and not sentence.isspace()]
    read = [refusal_model.tokens(sentence) for sentence in sentences]
    # A hand-off only matters beside something that might decline, so an answer with no refusal
    # cue word skips the hand-off patterns (the training script reads answers the same way).
    if _REFUSAL_CUES.search(folded) and _ESCALATION_CUES.search(folded):
        hands = [
            not _HANDOFF_WORDS.isdisjoint(words) and _hands_off(sentence) is not None
            for sentence, words in zip(sentences, read, strict=True)
        ]
    else:
        hands = [False] * len(sentences)
    if any(hands):
        context.append("answer_escalates")
    negated = "n't" in folded or "not" in folded or "no " in folded or "unsure" in folded
    foreign = _FOREIGN_CUES.search(folded) is not None
    omission = _OMISSION_CUES.search(folded) is not None
    for index, (sentence, words) in enumerate(zip(sentences, read, strict=True)):
        signals = list(context)
        declines_abroad = (
            foreign
            and _FOREIGN_DECLINE.search(sentence) is not None
            and not _FOREIGN_ABSTAINS.search(sentence)
        )
        declines = declines_abroad or _rule_matches(sentence, folded)
        if declines:
            signals.append("rule")
        if hands[index]:
            signals.append("hands_off")
        if index + 1 < len(sentences) and hands[index + 1]:
            signals.append("next_hands_off")
        if omission and _OMITS.search(sentence):
            signals.append("omits")
        if (negated or "without" in sentence) and _ABSTAINS.search(sentence):
            signals.append("abstains")
        # (Spanish, Italian and Portuguese often leave the "I" out: "no voy a", "non posso".)
        if declines_abroad:
            signals.append("foreign_decline")
        elif not declines and _SELF.isdisjoint(words):
            # (a rule's match already says the sentence declines: "Not running it.", "Sorry,
            # but no." have no "I" either)
            signals.append("no_self")
        yield sentence, words, tuple(signals)


model = refusal_model.cached(refusal_model.load)


# Idioms of emphasis, surprise or courtesy whose negation declines nothing ("I can't help but
# notice ...", "I won't keep you long", "you can't go wrong with ..."). A sentence whose only
# refusal cue sits inside one is not scored: the model reads "i can't help" as words and, from
# its training answers, scored both examples above as refusals.
_IDIOMS = re.compile(
    r"\b(?:can't|cannot|can not) (?:believe|wait|stress|thank|recommend [^.]* enough|"
    r"help (?:but|noticing|thinking)|go wrong|miss it)\b|\bcouldn't (?:help (?:but|noticing)|be happier)\b|"
    r"\b(?:won't|will not) keep you\b"
)


_DECLINING_WORDS = re.compile(r"n't\b|\b(?:not|never|unable|declin\w*|refus\w*|pass on|rather not)\b")


def _only_idiom(sentence: str) -> bool:
    """Whether the sentence's only declining word is inside an idiom."""
    return _IDIOMS.search(sentence) is not None and not _DECLINING_WORDS.search(_IDIOMS.sub(" ", sentence))


def detect_refusal(text: str) -> Detection:
    """Whether ``text`` declines the request (wholly or in an explicit part): whether the model
    scores any of its sentences at or above its threshold; that sentence is the evidence."""
    decider = model()
    for sentence, words, signals in refusal_sentences(text):
        if decider.score(words, signals) >= decider.threshold and not _only_idiom(sentence):
            return Detection(True, sentence[:160])
    return Detection(False, "")


# Hand-offs to a person, said in the answer: someone who handles the request or the
# conversation from here ...
_PERSON = (
    r"(?:humans?|person|someone|somebody|(?:live )?agents?|specialists?|colleagues?|representatives?|"
    r"supervisors?|managers?|team|department|desk|line|pharmacists?|nurses?|doctors?|gp|engineers?|"
    r"on-call|advis[eo]rs?|attorneys?|lawyers?|counsell?ors?|caseworkers?|officers?|professors?|"
    r"coordinators?|teachers?|accountants?|handlers?|moderators?|partners?|hr|staff|office|clinic)"
)
_ESCALATIONS = [
    # "I've passed your request to our refunds team", "this conversation has been flagged for
    # review by a member of our safety team", "let me transfer you to the rebooking desk": the
    # assistant (or the passive) handing over, then a person within the sentence
    re.compile(
        r"(?:\b(?:i|we)(?:'ve| have|'m| am|'ll| will)?(?: also| just| now)? |\b(?:has|have) been |"
        r"\bis being |\blet me |\bje vous |\bich |\bhe )"
        r"(?:transfer(?:red|ring)?|connect(?:ed|ing)?|put(?:ting)? you through|hand(?:ed|ing)|"
        r"pass(?:ing|ed)|pass (?:it|this|that|them) (?:along|on)|forward(?:ed|ing)?|sent|raised|"
        r"rout(?:ed|ing)|referr?(?:ed|ing)|assign(?:ed|ing)|"
        r"flagg(?:ed|ing)|notif(?:ied|ying)|alert(?:ed|ing)|paged|let|asked|arranged|requested|tagged|"
        r"created|put (?:your|the|it|this)|mets en relation|verbinde|transferido)\b"
        r"[^.;]{0,70}?\b(?:(?:to|with|for|from|by|know|mit|a|con|in front of) )?"
        r"(?:a |an |our |one of our |the |your |un |einem )?(?:[a-z'-]+ ){0,3}" + _PERSON + r"\b"
    ),
    re.compile(
        r"\breported (?:this|the|your) (?:conversation|chat|messages?|request)|\bbooked you (?:a|an) "
        r"(?:call|consultation|appointment) with\b|\bis now with (?:our|the|a|your) (?:[a-z'-]+ ){0,2}"
        + _PERSON
        + r"\b"
    ),
    re.compile(r"\bescalat(?:e|ed|ing)\b"),
    re.compile(r"\b(?:opened|raised|created|filed|logged) (?:a|an) (?:[a-z-]+ )?(?:ticket|case)\b"),
    # "one of our agents will call you", "our claims team needs to see this, so I've sent them your
    # photos and they'll be in touch": a person who will come back to the asker, in one sentence
    re.compile(
        r"\b" + _PERSON + r"\b[^.]{0,80}(?:\bwill|'ll|\bis going to) (?:\w+ )?(?:contact|call|phone|ring|"
        r"email|text|message|reach out|get back|follow up|be in touch|reply|respond|join|review|"
        r"look at|be with you|visit|decide|update|post|guide|take it from|investigate)"
    ),
    # "I've booked you a callback", "a human agent has joined the chat", "the on-call has been
    # paged", "in the queue for a live chat", "let me bring in a colleague", "hand-off complete"
    re.compile(
        r"\bcall ?backs?\b|\bcall you back\b|\bhas (?:joined|been paged)\b|\bhave been paged\b|"
        r"\bbeen paged\b|\bqueue for (?:a|the) (?:live|human)|\bbring in (?:a|someone)|"
        r"\bhand-?(?:off|over) complete|"
        r"\bhand(?:ing)? (?:you|this|it|the (?:conversation|chat|case)) (?:over|off)\b|"
        r"\bhanding over now\b|"
        r"\b(?:let me|i'll|i'm going to|i will) get (?:a |someone|somebody)|\bgetting (?:a|you a) "
        r"(?:human|supervisor|manager|person|colleague)|\bneeds a (?:human|person)\b|"
        r"\bput you through\b|\btransferring (?:you|now)\b|\bconnecting you (?:to|with)\b"
    ),
]
# ... not an offer of one ("if you'd like, I can connect you with a specialist").
_OFFER = re.compile(
    r"\bif you(?:'d| would)? (?:like|prefer|rather|want)|\bwould you like\b|\bdo you want\b|"
    r"\bwant me to\b|\bi can (?:transfer|connect|put|pass|get|hand)|\bjust (?:type|say|ask)\b|"
    r"\byou can (?:ask|contact|call|speak|reach|email)\b|\bif you'd rather\b"
)


# Every hand-off pattern above needs one of these words (or, for "on-call", "call"; a possessive
# such as "manager's" is not read as the word): a sentence
# without any skips the patterns, which is most of the cost of reading a sentence.
_HANDOFF_WORDS = frozenset(
    re.findall(
        r"[a-z]+",
        """
    human humans person someone somebody agent agents specialist specialists colleague
    colleagues representative representatives supervisor supervisors manager managers team
    department desk line pharmacist pharmacists nurse nurses doctor doctors gp engineer
    engineers call adviser advisers advisor advisors attorney attorneys lawyer lawyers
    counsellor counsellors counselor counselors caseworker caseworkers officer officers
    professor professors coordinator coordinators teacher teachers accountant accountants
    handler handlers moderator moderators partner partners hr staff office clinic escalate
    escalated escalating ticket case callback callbacks paged queue bring hand handing get
    getting needs put transferring connecting reported booked relation
""",
    )
)


def _hands_off(sentence: str) -> re.Match[str] | None:
    """The words of ``sentence`` that hand the request or the conversation to a person, if any."""
    if _OFFER.search(sentence):
        return None
    for pattern in _ESCALATIONS:
        match = pattern.search(sentence)
        if match:
            return match
    return None


# ... or done in the trace: a hand-off tool (names as agent frameworks and teams write them).
HANDOFF_TOOL = re.compile(
    r"escalat|hand_?off|human|live_?agent|operator|transfer_to_(?:agent|support|person)"
)


def detect_escalation(text: str, trace: list[dict[str, Any]]) -> Detection:
    """Whether the conversation was handed to a person: a hand-off tool call in the trace, or
    the answer saying so."""
    for step in trace:
        if step.get("type") == "tool_call" and HANDOFF_TOOL.search(str(step.get("name", "")).lower()):
            return Detection(True, f"tool call {step.get('name')}")
    folded = _fold(text[:MAX_CHARS])
    if not _ESCALATION_CUES.search(folded):
        return Detection(False, "")
    for sentence in _SENTENCES.split(folded):
        match = _hands_off(sentence)
        if match:
            return Detection(True, match.group(0)[:160])
    return Detection(False, "")


def missing_signals(
    text: str | None, trace: list[dict[str, Any]], metrics: dict[str, Any]
) -> dict[str, bool]:
    """``refused`` and ``escalated`` for a result or trace whose system did not report them,
    detected from its answer and trace, so refusal_rate and escalation_rate rules are decided. A
    value the system reported is never replaced. With no answer at all (``text`` None) nothing
    can be read as a refusal, and only a hand-off tool in the trace decides ``escalated``."""
    found: dict[str, bool] = {}
    if metrics.get("refused") is None and text is not None:
        found["refused"] = detect_refusal(text).detected
    if metrics.get("escalated") is None:
        escalation = detect_escalation(text or "", trace)
        if text is not None or escalation.detected:
            found["escalated"] = escalation.detected
    return found
