//! The index: which subscriptions an event matches, with work that grows with the event and
//! its matches, not with the number of subscriptions.
//!
//! The rules and the choice of keys are those of `service/matching/` (its docstring and
//! docs/matching.md explain them); a hypothesis test holds this index to the plain scan there.
//! Subscriptions are numbered by slot; an answer is the slots that match, each once, in no
//! particular order.

use rustc_hash::FxHashMap;

use crate::words::{Vocabulary, MAX_ID, UNKNOWN};

pub const POSTING: u8 = 1;
pub const ARTICLE: u8 = 2;
// A bucket entry is a slot and what the event needs to know about it, so that deciding
// costs no trip to the subscription's data (at a million subscriptions, a cache miss each):
// the kinds it wants, whether having the key settles the rule, whether an article (a
// posting) may have two of its keys and so find it twice, and whether it has exclude phrases
// (so may be vetoed) and, when they are one word, which. Most entries are sure, found once
// and without excludes: they go to the answer as they are. Layout: slot (29 bits, on top, so
// that sorting entries groups a slot's), the exclude word (28 bits), flags (7 bits).
type Entry = u64;
const KINDS: Entry = 0b11;
const SURE: Entry = 1 << 2;
const MULTI: Entry = 1 << 3;
const MULTI_POSTING: Entry = 1 << 4;
const EXCLUDE: Entry = 1 << 5;
const EXCLUDE_WORD: Entry = 1 << 6;
const WORD_SHIFT: u32 = 7;
const SLOT_SHIFT: u32 = 35;
const MAX_WORD: u32 = (1 << 28) - 1;
pub const MAX_SLOT: u32 = (1 << 29) - 1;
/// Beyond this many value combinations a subscription is filed under one field instead.
const MAX_COMBINATIONS: usize = 64;

// Key shapes: employer, city, a title word, two title words (smaller id first), and the pairs.
const E: u64 = 1;
const C: u64 = 2;
const T: u64 = 3;
const P: u64 = 4;
const EC: u64 = 5;
const ET: u64 = 6;
const CT: u64 = 7;

/// Ask for memory that will be read soon, so that several reads wait at once.
#[inline(always)]
fn prefetch<T>(at: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint; it never faults, whatever the address.
    unsafe {
        std::arch::x86_64::_mm_prefetch(at.cast::<i8>(), std::arch::x86_64::_MM_HINT_T0);
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = at;
}

fn slot_of(entry: Entry) -> u32 {
    (entry >> SLOT_SHIFT) as u32
}

fn key(shape: u64, first: u32, second: u32) -> u64 {
    shape << 60 | (first as u64) << 30 | second as u64
}

/// A bit per key hash, small enough to stay in cache: most keys an event computes are filed
/// nowhere, and asking the map about each would cost a trip to memory. Bits are never
/// cleared (removal leaves them); the filter is rebuilt from the live keys when it fills.
struct KeyFilter {
    bits: Vec<u64>,
    shift: u32,
    // Keys set since the last rebuild, removed ones included.
    set: usize,
}

impl KeyFilter {
    // About 16 bits per key: one key in twenty that is filed nowhere still gets through.
    const BITS_PER_KEY: usize = 16;

    fn with_room_for(keys: usize) -> Self {
        let bits = (keys.max(1 << 12) * Self::BITS_PER_KEY).next_power_of_two();
        KeyFilter {
            bits: vec![0; bits / 64],
            shift: 64 - bits.trailing_zeros(),
            set: 0,
        }
    }

    fn bit(&self, key: u64) -> (usize, u64) {
        let h = (key ^ key >> 29).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> self.shift;
        ((h >> 6) as usize, 1 << (h & 63))
    }

    fn may_have(&self, key: u64) -> bool {
        let (word, bit) = self.bit(key);
        self.bits[word] & bit != 0
    }

    fn set(&mut self, key: u64) {
        let (word, bit) = self.bit(key);
        self.bits[word] |= bit;
        self.set += 1;
    }

    fn is_full(&self) -> bool {
        self.set * Self::BITS_PER_KEY > self.bits.len() * 64
    }
}

/// Up to three word ids (below 2^30) and their count, in one number.
fn packed(words: &[u32]) -> Option<u128> {
    if words.len() > 3 {
        return None;
    }
    let mut key = (words.len() as u128) << 96;
    for (n, &w) in words.iter().enumerate() {
        key |= u128::from(w) << (32 * n);
    }
    Some(key)
}

/// Employer and city values as they are compared: word ids in order.
pub const EMPLOYER: usize = 0;
pub const CITY: usize = 1;

/// A subscription's criteria as word ids, already normalized (employer and city forms
/// applied, values without words dropped).
pub struct Criteria {
    pub kinds: u8,
    pub employers: Vec<Vec<u32>>,
    pub cities: Vec<Vec<u32>>,
    pub titles: Vec<Vec<u32>>,
    pub exclude: Vec<Vec<u32>>,
}

/// Employer and city values by id, and, for each field, how many live subscriptions name
/// each one, how many live values start with each word, and the longest value: an article
/// only reads the runs of its text that could be one.
#[derive(Default)]
struct Values {
    // Values of up to three words, nearly all, are kept in the key itself (see `packed`).
    short: FxHashMap<u128, u32>,
    long: FxHashMap<Box<[u32]>, u32>,
    words: Vec<Box<[u32]>>,
    held: Vec<[u32; 2]>,
    first: [Vec<u32>; 2],
    // Only ever grows: a longer bound costs a few lookups, never a wrong answer.
    longest: [usize; 2],
}

impl Values {
    fn intern(&mut self, words: &[u32]) -> u32 {
        if let Some(id) = self.get(words) {
            return id;
        }
        let id = self.words.len() as u32;
        assert!(id <= MAX_ID, "more than 2^30 distinct values");
        self.words.push(words.into());
        match packed(words) {
            Some(key) => self.short.insert(key, id),
            None => self.long.insert(words.into(), id),
        };
        self.held.push([0, 0]);
        id
    }

    fn get(&self, words: &[u32]) -> Option<u32> {
        match packed(words) {
            Some(key) => self.short.get(&key),
            None => self.long.get(words),
        }
        .copied()
    }

    fn hold(&mut self, field: usize, value: u32) {
        let held = &mut self.held[value as usize][field];
        *held += 1;
        if *held == 1 {
            let words = &self.words[value as usize];
            let first = &mut self.first[field];
            let w = words[0] as usize;
            if first.len() <= w {
                first.resize(w + 1, 0);
            }
            first[w] += 1;
            self.longest[field] = self.longest[field].max(words.len());
        }
    }

    fn release(&mut self, field: usize, value: u32) {
        let held = &mut self.held[value as usize][field];
        *held -= 1;
        if *held == 0 {
            self.first[field][self.words[value as usize][0] as usize] -= 1;
        }
    }

    fn live(&self, field: usize, words: &[u32]) -> Option<u32> {
        let id = self.get(words)?;
        (self.held[id as usize][field] > 0).then_some(id)
    }

    /// The live values of `field` that lead `name` (`ross` and `ross store` lead `ross store`).
    fn leading(&self, field: usize, name: &[u32], out: &mut Vec<u32>) {
        let reach = name.len().min(self.longest[field]);
        for n in 1..=reach {
            if name[n - 1] == UNKNOWN {
                break;
            }
            if let Some(id) = self.live(field, &name[..n]) {
                out.push(id);
            }
        }
    }

    /// The live values of `field` that occur as runs of `text`.
    fn runs(&self, field: usize, text: &[u32], out: &mut Vec<u32>) {
        let first = &self.first[field];
        for start in 0..text.len() {
            let w = text[start];
            if w == UNKNOWN || first.get(w as usize).is_none_or(|&n| n == 0) {
                continue;
            }
            self.leading(field, &text[start..], out);
        }
    }
}

/// A subscription as stored: `[n, employer value ids…, n, city value ids…, n, (len, words…)
/// per title, n, (len, words…) per exclude]`, title and exclude words sorted and distinct.
/// One allocation each, because there may be a million. A view's sections leave out the
/// counts.
struct View<'a> {
    employers: &'a [u32],
    cities: &'a [u32],
    titles: &'a [u32],
    exclude: &'a [u32],
}

fn split_ids(data: &[u32]) -> (&[u32], &[u32]) {
    let n = data[0] as usize;
    (&data[1..1 + n], &data[1 + n..])
}

fn split_phrases(data: &[u32]) -> (&[u32], &[u32]) {
    let (count, mut end) = (data[0], 1);
    for _ in 0..count {
        end += 1 + data[end] as usize;
    }
    (&data[1..end], &data[end..])
}

fn view(data: &[u32]) -> View<'_> {
    let (employers, rest) = split_ids(data);
    let (cities, rest) = split_ids(rest);
    let (titles, rest) = split_phrases(rest);
    let (exclude, _) = split_phrases(rest);
    View {
        employers,
        cities,
        titles,
        exclude,
    }
}

/// The phrases of an encoded `(len, words…)*` section.
fn phrases(mut data: &[u32]) -> impl Iterator<Item = &[u32]> {
    std::iter::from_fn(move || {
        let (&len, rest) = data.split_first()?;
        let (phrase, rest) = rest.split_at(len as usize);
        data = rest;
        Some(phrase)
    })
}

fn holds_all(title: &[u32], phrase: &[u32]) -> bool {
    phrase.iter().all(|w| title.binary_search(w).is_ok())
}

fn push_distinct<T: PartialEq>(out: &mut Vec<T>, item: T) {
    if !out.contains(&item) {
        out.push(item);
    }
}

fn encode_phrases(out: &mut Vec<u32>, raw: Vec<Vec<u32>>) {
    let mut distinct: Vec<Vec<u32>> = Vec::new();
    for mut phrase in raw {
        phrase.sort_unstable();
        phrase.dedup();
        push_distinct(&mut distinct, phrase);
    }
    out.push(distinct.len() as u32);
    for phrase in distinct {
        out.push(phrase.len() as u32);
        out.extend(phrase);
    }
}

#[derive(Default)]
struct Scratch {
    employers: Vec<u32>,
    cities: Vec<u32>,
    title: Vec<u32>,
    city_text: Vec<u32>,
    // Entries that need more than a copy: to check, to deduplicate or to veto.
    keys: Vec<u64>,
    other: Vec<Entry>,
    found: Vec<u32>,
}

pub struct Index {
    pub vocabulary: Vocabulary,
    values: Values,
    buckets: FxHashMap<u64, Vec<Entry>>,
    filter: KeyFilter,
    subscriptions: Vec<Option<Box<[u32]>>>,
    with_exclude: usize,
    live: usize,
    scratch: Scratch,
}

impl Index {
    pub fn new(vocabulary: Vocabulary) -> Self {
        Index {
            vocabulary,
            values: Values::default(),
            buckets: FxHashMap::default(),
            filter: KeyFilter::with_room_for(0),
            subscriptions: Vec::new(),
            with_exclude: 0,
            live: 0,
            scratch: Scratch::default(),
        }
    }

    pub fn add(&mut self, slot: u32, criteria: Criteria) -> Result<(), String> {
        if slot > MAX_SLOT {
            return Err(format!("slot {slot} is past the last one, {MAX_SLOT}"));
        }
        let at = slot as usize;
        if self.subscriptions.len() <= at {
            self.subscriptions.resize(at + 1, None);
        }
        if self.subscriptions[at].is_some() {
            return Err(format!("slot {slot} is taken"));
        }
        let mut data = Vec::new();
        for (field, raw) in [(EMPLOYER, criteria.employers), (CITY, criteria.cities)] {
            let mut ids = Vec::new();
            for value in raw.iter().filter(|v| !v.is_empty()) {
                push_distinct(&mut ids, self.values.intern(value));
            }
            for &id in &ids {
                self.values.hold(field, id);
            }
            data.push(ids.len() as u32);
            data.extend(ids);
        }
        let nonempty = |raw: Vec<Vec<u32>>| raw.into_iter().filter(|v| !v.is_empty()).collect();
        encode_phrases(&mut data, nonempty(criteria.titles));
        encode_phrases(&mut data, nonempty(criteria.exclude));
        let data: Box<[u32]> = data.into();
        let places = self.places(&view(&data));
        let mut entry = Entry::from(slot) << SLOT_SHIFT | (Entry::from(criteria.kinds) & KINDS);
        if places.len() > 1 {
            entry |= MULTI;
        }
        if self.meet_in_a_posting(&places) {
            entry |= MULTI_POSTING;
        }
        let exclude: Vec<&[u32]> = phrases(view(&data).exclude).collect();
        if !exclude.is_empty() {
            entry |= EXCLUDE;
            self.with_exclude += 1;
            if let [[word]] = exclude[..] {
                if *word <= MAX_WORD {
                    entry |= EXCLUDE_WORD | Entry::from(*word) << WORD_SHIFT;
                }
            }
        }
        for (key, sure) in places {
            let entry = if sure { entry | SURE } else { entry };
            let bucket = self.buckets.entry(key).or_default();
            if bucket.is_empty() {
                self.filter.set(key);
            }
            bucket.push(entry);
        }
        if self.filter.is_full() {
            // Twice the live keys' room: rebuilds stay rare as the index grows or churns.
            self.filter = KeyFilter::with_room_for(2 * self.buckets.len());
            for &key in self.buckets.keys() {
                self.filter.set(key);
            }
        }
        self.subscriptions[at] = Some(data);
        self.live += 1;
        Ok(())
    }

    pub fn remove(&mut self, slot: u32) -> bool {
        let Some(data) = self
            .subscriptions
            .get_mut(slot as usize)
            .and_then(Option::take)
        else {
            return false;
        };
        let v = view(&data);
        for (key, _) in self.places(&v) {
            let bucket = self
                .buckets
                .get_mut(&key)
                .expect("a filed key has a bucket");
            let at = bucket
                .iter()
                .position(|e| slot_of(*e) == slot)
                .expect("filed in its bucket");
            bucket.swap_remove(at);
            if bucket.is_empty() {
                self.buckets.remove(&key);
            }
        }
        if !v.exclude.is_empty() {
            self.with_exclude -= 1;
        }
        for (field, ids) in [(EMPLOYER, v.employers), (CITY, v.cities)] {
            for &id in ids {
                self.values.release(field, id);
            }
        }
        self.live -= 1;
        true
    }

    /// Where a subscription is filed, each key with whether having it settles the rule
    /// (exclude phrases aside: they veto at the end). Most selective first: employer with
    /// city; else employer or city with the longest word of each title; else one field; a
    /// title alone by its word, or by its two longest words.
    fn places(&self, v: &View) -> Vec<(u64, bool)> {
        let titles: Vec<&[u32]> = phrases(v.titles).collect();
        let (es, cs) = (v.employers, v.cities);
        let mut out: Vec<(u64, bool)> = Vec::new();
        if es.is_empty() && cs.is_empty() {
            out.extend(titles.iter().map(|t| self.title_place(t)));
        } else if !es.is_empty() && !cs.is_empty() && es.len() * cs.len() <= MAX_COMBINATIONS {
            for &e in es {
                out.extend(cs.iter().map(|&c| (key(EC, e, c), titles.is_empty())));
            }
        } else if (es.is_empty() || cs.is_empty())
            && !titles.is_empty()
            && (es.len() + cs.len()) * titles.len() <= MAX_COMBINATIONS
        {
            let (shape, values) = if es.is_empty() { (CT, cs) } else { (ET, es) };
            for &value in values {
                for t in &titles {
                    out.push((key(shape, value, self.longest_words(t)[0]), t.len() == 1));
                }
            }
        } else {
            // Too many combinations, or one field alone: the field with fewer values.
            let (shape, values) = if cs.is_empty() || (!es.is_empty() && es.len() <= cs.len()) {
                (E, es)
            } else {
                (C, cs)
            };
            let sure = (es.is_empty() || cs.is_empty()) && titles.is_empty();
            out.extend(values.iter().map(|&value| (key(shape, value, 0), sure)));
        }
        // One entry per key; it is sure if any of its reasons is.
        out.sort_unstable_by_key(|&(k, sure)| (k, !sure));
        out.dedup_by_key(|&mut (k, _)| k);
        out
    }

    /// Whether one posting may have two of these keys. An article may have any two, but a
    /// posting has one employer and one city, so two employer (city) values meet only when
    /// one leads the other; title words always may.
    fn meet_in_a_posting(&self, places: &[(u64, bool)]) -> bool {
        let parts = |k: u64| (k >> 60, (k >> 30) as u32 & MAX_ID, k as u32 & MAX_ID);
        let related = |a: u32, b: u32| {
            let (a, b) = (
                &self.values.words[a as usize],
                &self.values.words[b as usize],
            );
            a.starts_with(b) || b.starts_with(a)
        };
        places.iter().enumerate().any(|(n, &(p, _))| {
            places[n + 1..].iter().any(|&(q, _)| {
                let ((shape, p1, p2), (other, q1, q2)) = (parts(p), parts(q));
                shape != other
                    || match shape {
                        E | C => related(p1, q1),
                        EC => related(p1, q1) && related(p2, q2),
                        ET | CT => related(p1, q1),
                        _ => true,
                    }
            })
        })
    }

    fn title_place(&self, title: &[u32]) -> (u64, bool) {
        if title.len() == 1 {
            return (key(T, title[0], 0), true);
        }
        let longest = self.longest_words(title);
        let (a, b) = (longest[0].min(longest[1]), longest[0].max(longest[1]));
        (key(P, a, b), title.len() == 2)
    }

    /// A title's words, longest first (the rarest, as a rule): a fair key, as every word
    /// must be present.
    fn longest_words(&self, title: &[u32]) -> Vec<u32> {
        let mut sorted = title.to_vec();
        sorted.sort_by_key(|&w| {
            let word = self.vocabulary.word(w);
            (std::cmp::Reverse(word.len()), word)
        });
        sorted
    }

    /// Words to ids for matching: a word no subscription has is `UNKNOWN`.
    pub fn posting(&mut self, employer: &[u32], title: &[u32], city: &[u32]) -> &[u32] {
        let mut s = std::mem::take(&mut self.scratch);
        s.employers.clear();
        s.cities.clear();
        self.values.leading(EMPLOYER, employer, &mut s.employers);
        self.values.leading(CITY, city, &mut s.cities);
        self.collect(POSTING, &mut s, title);
        self.scratch = s;
        &self.scratch.found
    }

    pub fn article(
        &mut self,
        headline: &[u32],
        body: &[u32],
        companies: &[Vec<u32>],
        cities: &[Vec<u32>],
    ) -> &[u32] {
        let mut s = std::mem::take(&mut self.scratch);
        s.employers.clear();
        s.cities.clear();
        // Runs never span the headline and the body.
        for part in [headline, body] {
            self.values.runs(EMPLOYER, part, &mut s.employers);
            s.city_text.clear();
            s.city_text.extend_from_slice(part);
            self.vocabulary.city_form(&mut s.city_text);
            self.values.runs(CITY, &s.city_text, &mut s.cities);
        }
        for company in companies {
            self.values.leading(EMPLOYER, company, &mut s.employers);
        }
        for city in cities {
            self.values.leading(CITY, city, &mut s.cities);
        }
        for ids in [&mut s.employers, &mut s.cities] {
            ids.sort_unstable();
            ids.dedup();
        }
        self.collect(ARTICLE, &mut s, headline);
        self.scratch = s;
        &self.scratch.found
    }

    /// The slots that match, into `s.found`: the entries under every key the event has
    /// (kinds filtered by their bits); those that are sure, filed once and without excludes as
    /// they are, the rest deduplicated, checked if unsure, and vetoed.
    fn collect(&self, kind: u8, s: &mut Scratch, title: &[u32]) {
        s.title.clear();
        s.title
            .extend(title.iter().copied().filter(|&w| w != UNKNOWN));
        s.title.sort_unstable();
        s.title.dedup();
        s.found.clear();
        s.other.clear();
        // Every key first, then every lookup, then every entry: the lookups do not wait on
        // each other, so their cache misses overlap instead of queueing.
        let (es, cs, ts) = (&s.employers, &s.cities, &s.title);
        s.keys.clear();
        for (shape, values) in [(E, es), (C, cs), (T, ts)] {
            s.keys
                .extend(values.iter().map(|&value| key(shape, value, 0)));
        }
        for (shape, firsts, seconds) in [(EC, es, cs), (ET, es, ts), (CT, cs, ts)] {
            for &first in firsts {
                s.keys
                    .extend(seconds.iter().map(|&second| key(shape, first, second)));
            }
        }
        for (n, &first) in ts.iter().enumerate() {
            s.keys
                .extend(ts[n + 1..].iter().map(|&second| key(P, first, second)));
        }
        let buckets: Vec<&[Entry]> = s
            .keys
            .iter()
            .filter(|&&k| self.filter.may_have(k))
            .filter_map(|k| self.buckets.get(k))
            .map(Vec::as_slice)
            .collect();
        for bucket in &buckets {
            prefetch(bucket.as_ptr());
        }
        let twice = if kind == POSTING {
            MULTI_POSTING
        } else {
            MULTI
        };
        let kind = Entry::from(kind);
        for entry in buckets.into_iter().flatten() {
            if entry & kind != 0 {
                if entry & (SURE | twice | EXCLUDE) == SURE {
                    s.found.push(slot_of(*entry));
                } else {
                    s.other.push(*entry);
                }
            }
        }
        if s.other.is_empty() {
            return;
        }
        // Sorted, a slot's entries are side by side: it is sure if any of them is.
        s.other.sort_unstable();
        let mut n = 0;
        while n < s.other.len() {
            let slot = slot_of(s.other[n]);
            let mut bits = 0;
            while n < s.other.len() && slot_of(s.other[n]) == slot {
                bits |= s.other[n];
                n += 1;
            }
            if bits & SURE == 0 && !self.satisfies(slot, &s.employers, &s.cities, &s.title) {
                continue;
            }
            if bits & EXCLUDE == 0 || !self.vetoed(slot, bits, &s.title) {
                s.found.push(slot);
            }
        }
    }

    /// Whether an exclude phrase of this subscription is all in the title (sorted).
    fn vetoed(&self, slot: u32, entry: Entry, title: &[u32]) -> bool {
        if entry & EXCLUDE_WORD != 0 {
            let word = (entry >> WORD_SHIFT) as u32 & MAX_WORD;
            return title.binary_search(&word).is_ok();
        }
        let data = self.subscriptions[slot as usize]
            .as_deref()
            .expect("a found slot is live");
        phrases(view(data).exclude).any(|x| holds_all(title, x))
    }

    /// The full rule, exclude phrases aside, given the event's live employer and city values
    /// and its title words (sorted).
    fn satisfies(&self, slot: u32, employers: &[u32], cities: &[u32], title: &[u32]) -> bool {
        let data = self.subscriptions[slot as usize]
            .as_deref()
            .expect("a filed slot is live");
        let v = view(data);
        (v.titles.is_empty() || phrases(v.titles).any(|t| holds_all(title, t)))
            && (v.employers.is_empty() || v.employers.iter().any(|e| employers.contains(e)))
            && (v.cities.is_empty() || v.cities.iter().any(|c| cities.contains(c)))
    }

    /// What the index holds, for tests that check removal leaves nothing behind.
    pub fn stats(&self) -> [(&'static str, usize); 5] {
        let held = self.values.held.iter().filter(|h| h[0] + h[1] > 0).count();
        let firsts = self
            .values
            .first
            .iter()
            .flatten()
            .filter(|&&n| n > 0)
            .count();
        [
            ("subscriptions", self.live),
            ("keys", self.buckets.len()),
            ("values", held),
            ("first_words", firsts),
            ("with_exclude", self.with_exclude),
        ]
    }
}
