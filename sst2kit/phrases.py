"""Word-span searches over SST-2's items: leakage between splits, phrases vs whole sentences, the
source sentence each item was cut from, duplicates, and the grouped split.

SST-2's train items are whole review sentences and the phrases of their parse trees, deduplicated:
one phrase ("the film") can sit inside hundreds of sentences. Items are compared as lower-cased
words, whitespace collapsed.
"""

from collections import defaultdict

import numpy as np
from tqdm.auto import tqdm

# words; SST-2's longest item has 52. Longer items are found through LongSpans instead
LONG_ITEM = 64


def words(text):
    return tuple(text.lower().split())


class SpanIndex:
    """Word tuples (up to LONG_ITEM words each) in a trie, to find which of them lie inside a text:
    from each word of the text, walk on while the words so far begin some tuple. A walk ends after a
    few words (few tuples share a long beginning), where listing every span of the text costs one
    tuple per span (12.6 million over SST-2)."""

    def __init__(self, tuples):
        self.root = {}
        for item in tuples:
            if len(item) <= LONG_ITEM:
                node = self.root
                for word in item:
                    node = node.setdefault(word, {})
                node[""] = item  # "" is never a word: the key that marks a whole tuple

    def inside(self, tokens, proper=False):
        """The tuples that are contiguous word spans of tokens (proper: strictly shorter spans
        only)."""
        n = len(tokens)
        longest = n - 1 if proper else n
        found = []
        for start in range(n):
            node = self.root
            for end in range(start, min(n, start + longest)):
                node = node.get(tokens[end])
                if node is None:
                    break
                if "" in node:
                    found.append(node[""])
        return found


class LongSpans:
    """Word tuples longer than LONG_ITEM words (a trie of whole reviews would cost memory per word),
    found inside texts through their first LONG_ITEM words: at each start position of a text, one
    dictionary look-up gives the tuples that begin there, by length, and one set look-up per length
    decides. Linear in the texts' words, where comparing every long tuple with every long text was
    quadratic (20,000 rows of 65 words: 92 s)."""

    def __init__(self, tuples):
        self.by_beginning = defaultdict(lambda: defaultdict(set))
        for item in tuples:
            if len(item) > LONG_ITEM:
                self.by_beginning[item[:LONG_ITEM]][len(item)].add(item)

    def inside(self, tokens, proper=False):
        """The long tuples that are contiguous word spans of tokens (proper: strictly shorter spans
        only)."""
        found = []
        if not self.by_beginning or len(tokens) <= LONG_ITEM:
            return found
        for start in range(len(tokens) - LONG_ITEM + 1):
            for length, items in self.by_beginning.get(
                tokens[start : start + LONG_ITEM], {}
            ).items():
                if (
                    (length < len(tokens) or not proper)
                    and start + length <= len(tokens)
                    and tokens[start : start + length] in items
                ):
                    found.append(tokens[start : start + length])
        return found


def spans_found(wanted, containers, *, proper, desc="phrase search"):
    """Which of the wanted word tuples occur as a contiguous word span of some container (proper: a
    strictly shorter span, so an item inside another one, not the item itself). Wanted items up to
    LONG_ITEM words are found by walking a SpanIndex over each container; longer ones by whole-word
    substring search."""
    index, found = SpanIndex(wanted), set()
    # longest first: a container already found inside a longer one has no span that one lacks, so it
    # is skipped (over SST-2's own items, only the ~8k whole sentences are walked, not all 68k
    # items)
    for text in tqdm(
        sorted(containers, key=len, reverse=True),
        desc=desc,
        unit="item",
        leave=False,
        mininterval=1,
    ):
        if text not in found:
            found.update(index.inside(text, proper=proper))
    long_spans = LongSpans(wanted)
    if long_spans.by_beginning:
        for text in containers:
            if len(text) > LONG_ITEM:
                found.update(long_spans.inside(text, proper=proper))
    return found


def inside_fractions(containers, queries):
    """For each named list of queries: the share that is a contiguous word span of some container
    item."""
    found = spans_found(
        {words(q) for items in queries.values() for q in items},
        set(map(words, containers)),
        proper=False,
        desc="leakage search",
    )
    return {
        name: sum(words(q) in found for q in items) / max(len(items), 1)
        for name, items in queries.items()
    }


def shared_items(items, others):
    """How many of the items are, word for word, also among the others."""
    others = set(map(words, others))
    return sum(words(item) in others for item in items)


def duplicate_units(items):
    """A unit id per item: identical items share one (a sentence listed twice is one piece of
    evidence)."""
    ids = {}
    return np.array([ids.setdefault(words(item), len(ids)) for item in items], dtype=np.int64)


def roots_and_members(texts, desc):
    """The roots among the texts (word tuples): those inside no other text; and for each root, the
    texts inside it, itself included. Longest first: a text inside a longer one is inside a root
    walked before it, and is skipped, so only the roots are walked (over SST-2, ~8k of 68k
    items)."""
    spans, long_spans = SpanIndex(texts), LongSpans(texts)
    members_of, inside = {}, set()
    for text in tqdm(
        sorted(texts, key=len, reverse=True), desc=desc, unit="item", leave=False, mininterval=1
    ):
        if text in inside:
            continue
        members = set(spans.inside(text)) | set(long_spans.inside(text, proper=True)) | {text}
        inside |= members - {text}
        members_of[text] = members
    return members_of


def is_phrase_and_source(items, corpus):
    """For each item: is it a phrase (a proper word span of another corpus item) rather than a whole
    sentence, and a unit id: the source sentence it was cut from.

    Source sentences are the corpus items inside no other item. An item inside exactly one source
    sentence joins that sentence's unit, with the sentence's other phrases: they share words and a
    parse tree, so they are not independent evidence. A phrase inside several source sentences ("the
    film" sits in hundreds) is a unit of its own: it belongs to no one sentence more than another,
    and tying it to all of them would chain unrelated sentences into one giant unit (union-find over
    nested spans did: 23% of the real test set in one cluster). Identical items share a unit.
    """
    item_words = [words(item) for item in items]
    members_of = roots_and_members(
        set(map(words, corpus)) | set(item_words), desc="phrases and their sentences"
    )
    wanted, sources = set(item_words), defaultdict(set)  # item -> the source sentences it lies in
    for root, members in members_of.items():
        for member in members & wanted:
            sources[member].add(root)
    is_phrase = np.array([w not in members_of for w in item_words])
    ids = {}
    units = [
        ids.setdefault(next(iter(sources[w])) if len(sources[w]) == 1 else ("own", w), len(ids))
        for w in item_words
    ]
    return is_phrase, np.array(units, dtype=np.int64)


def grouped_test_mask(sentences, test_size, seed):
    """Pick test items so that none is a word span of a training item, about test_size of all items.

    SST-2 items are phrases of ~7k sentences. Take the maximal items ("roots": spans of no other
    item) in a seeded random order; an item goes to test once every root that contains it is a test
    root. Then any training item containing a test item would have all its roots among the test
    roots, which would have made it a test item: so none exists. Items shared by train and test
    roots stay in train.
    """
    texts = sorted(set(map(words, sentences)))
    index = {text: i for i, text in enumerate(texts)}
    # root -> the items inside it, itself included
    contained = {
        index[root]: [index[member] for member in members]
        for root, members in roots_and_members(texts, desc="grouped split").items()
    }
    roots = np.array(sorted(contained))
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
