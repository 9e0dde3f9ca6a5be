"""Word-span searches over SST-2's items: leakage between splits, phrases vs whole sentences, the source sentence
each item was cut from, duplicates, and the grouped split.

SST-2's train items are whole review sentences and the phrases of their parse trees, deduplicated: one phrase
("the film") can sit inside hundreds of sentences. Items are compared as lower-cased words, whitespace collapsed.
"""
from collections import defaultdict

import numpy as np
from tqdm.auto import tqdm

LONG_ITEM = 64  # words; SST-2's longest item has 52. Longer items are found by substring search instead of spans


def words(text):
    return tuple(text.lower().split())


def spans(tokens, longest):
    """Every contiguous word span of a tokenised item up to `longest` words (the item itself included if short).
    Bounding the length keeps the count near-linear in the item's length, not quadratic."""
    n = len(tokens)
    return (tokens[i:j] for i in range(n) for j in range(i + 1, min(n, i + longest) + 1))


def padded_text(tokens):
    return f" {' '.join(tokens)} "  # spaces around, so a substring match is a match of whole words


def spans_found(wanted, containers, *, proper, desc="phrase search"):
    """Which of the wanted word tuples occur as a contiguous word span of some container (proper: a strictly
    shorter span, so an item inside another one, not the item itself). Spans up to LONG_ITEM words are enumerated,
    in one pass over the containers; longer wanted items are found by whole-word substring search."""
    short = {q for q in wanted if len(q) <= LONG_ITEM}
    longest = max(map(len, short), default=0)
    found = {span for text in tqdm(containers, desc=desc, unit="item", leave=False, mininterval=1)
             for span in spans(text, min(longest, len(text) - proper)) if span in short}
    long_wanted = wanted - short
    if long_wanted:
        padded = [padded_text(text) for text in containers if len(text) > LONG_ITEM]
        found |= {q for q in long_wanted
                  if sum(padded_text(q) in text for text in padded) > (proper and q in containers)}
    return found


def inside_fractions(containers, queries):
    """For each named list of queries: the share that is a contiguous word span of some container item."""
    found = spans_found({words(q) for items in queries.values() for q in items}, set(map(words, containers)),
                        proper=False, desc="leakage search")
    return {name: sum(words(q) in found for q in items) / max(len(items), 1) for name, items in queries.items()}


def shared_items(items, others):
    """How many of the items are, word for word, also among the others."""
    others = set(map(words, others))
    return sum(words(item) in others for item in items)


def duplicate_units(items):
    """A unit id per item: identical items share one (a sentence listed twice is one piece of evidence)."""
    ids = {}
    return np.array([ids.setdefault(words(item), len(ids)) for item in items], dtype=np.int64)


def is_phrase_and_source(items, corpus):
    """For each item: is it a phrase (a proper word span of another corpus item) rather than a whole sentence, and
    a unit id: the source sentence it was cut from.

    Source sentences are the corpus items inside no other item. An item inside exactly one source sentence joins
    that sentence's unit, with the sentence's other phrases: they share words and a parse tree, so they are not
    independent evidence. A phrase inside several source sentences ("the film" sits in hundreds) is a unit of its
    own: it belongs to no one sentence more than another, and tying it to all of them would chain unrelated
    sentences into one giant unit (union-find over nested spans did: 23% of the real test set in one cluster).
    Identical items share a unit. Items longer than LONG_ITEM words are their own units.
    """
    item_words = [words(item) for item in items]
    corpus_words = set(map(words, corpus)) | set(item_words)
    inside = spans_found(corpus_words, corpus_words, proper=True, desc="phrases and their sentences")
    is_phrase = np.array([w in inside for w in item_words])
    wanted = set(item_words)
    longest = min(LONG_ITEM, max(map(len, wanted), default=0))
    sources = defaultdict(set)  # item -> the source sentences it lies in
    for root in corpus_words - inside:
        for span in spans(root, longest):
            if span in wanted:
                sources[span].add(root)
    ids = {}
    units = [ids.setdefault(next(iter(sources[w])) if len(sources[w]) == 1 else ("own", w), len(ids))
             for w in item_words]
    return is_phrase, np.array(units, dtype=np.int64)


def grouped_test_mask(sentences, test_size, seed):
    """Pick test items so that none is a word span of a training item, about test_size of all items.

    SST-2 items are phrases of ~7k sentences. Take the maximal items ("roots": spans of no other item)
    in a seeded random order; an item goes to test once every root that contains it is a test root.
    Then any training item containing a test item would have all its roots among the test roots,
    which would have made it a test item: so none exists. Items shared by train and test roots stay in train.
    """
    texts = sorted(set(map(words, sentences)))
    index = {text: i for i, text in enumerate(texts)}
    longest = min(LONG_ITEM, max(map(len, texts), default=0))
    contained = [{index[s] for s in spans(text, longest) if s in index} | {i} for i, text in enumerate(texts)]
    long_items = [i for i, text in enumerate(texts) if len(text) > LONG_ITEM]
    padded = {i: padded_text(texts[i]) for i in long_items}
    for i in long_items:  # few, if any: each is searched for inside the other long items
        contained_in = [j for j in long_items if len(texts[j]) > len(texts[i]) and padded[i] in padded[j]]
        for j in contained_in:
            contained[j].add(i)
    contained = [list(members) for members in contained]  # includes itself
    inside_other = np.zeros(len(texts), bool)
    for i, members in enumerate(contained):
        inside_other[[m for m in members if m != i]] = True
    roots = np.flatnonzero(~inside_other)
    open_roots = np.zeros(len(texts), int)  # per item: how many of its roots are not yet test roots
    for r in roots:
        open_roots[contained[r]] += 1
    copies = np.bincount([index[words(s)] for s in sentences], minlength=len(texts))
    in_test, target, taken = np.zeros(len(texts), bool), test_size * len(sentences), 0
    for r in np.random.default_rng(seed).permutation(roots):
        if taken >= target:
            break
        open_roots[contained[r]] -= 1
        newly = [m for m in contained[r] if open_roots[m] == 0 and not in_test[m]]
        in_test[newly] = True
        taken += copies[newly].sum()
    return np.array([in_test[index[words(s)]] for s in sentences])
