//! Text to word ids, by the rules of `service/matching/normalize.py`.
//!
//! ASCII text, nearly all of it, is normalized here: lowercase, apostrophes dropped without a
//! gap, `&` -> `and`, anything else that is not a letter or digit a space, and the plural `s`
//! taken off words of more than three letters. Any other text goes to the Python reference
//! (`general_words`), so the Unicode rules live in one place. A test holds this path to it.
//! Of the apostrophe-like marks only `'` and `` ` `` are ASCII; the others (`’ ‘ ʼ ʻ ´`) make
//! the text non-ASCII, so the reference drops them.

use rustc_hash::FxHashMap;

/// The id of a word no subscription uses: it can be part of no key and no value.
pub const UNKNOWN: u32 = u32::MAX;
/// Ids are packed two to an index key, so they must fit in 30 bits.
pub const MAX_ID: u32 = (1 << 30) - 1;

/// Lowercase ASCII with every separator a space, ready to split.
pub fn clean_ascii(text: &[u8], buf: &mut Vec<u8>) {
    buf.clear();
    buf.reserve(text.len() + 8);
    for &b in text {
        if b.is_ascii_alphanumeric() {
            buf.push(b.to_ascii_lowercase());
        } else if b == b'&' {
            buf.extend_from_slice(b" and ");
        } else if b != b'\'' && b != b'`' {
            buf.push(b' ');
        }
    }
}

pub fn stem(word: &[u8]) -> &[u8] {
    let n = word.len();
    if n > 3 && word[n - 1] == b's' && word[n - 2] != b's' {
        &word[..n - 1]
    } else {
        word
    }
}

fn packed(word: &str) -> Option<u128> {
    let bytes = word.as_bytes();
    // A word has no NUL (it is letters and digits), so padding with NUL is unambiguous.
    let mut key = [0u8; 16];
    key.get_mut(..bytes.len())?.copy_from_slice(bytes);
    Some(u128::from_le_bytes(key))
}

/// Every word seen in a subscription, by id. Ids are never reused, so keys built from them
/// stay valid for the life of the index.
pub struct Vocabulary {
    // Words of up to 16 bytes, nearly all, are kept in the key itself: finding one then
    // reads no string from elsewhere in memory.
    short: FxHashMap<u128, u32>,
    long: FxHashMap<Box<str>, u32>,
    words: Vec<Box<str>>,
    legal_forms: Vec<u32>,
    city_words: Vec<(u32, u32)>,
}

impl Vocabulary {
    /// `legal_forms` and `city_words` are `service/matching/normalize.py`'s, the one list of each.
    pub fn new(legal_forms: &[String], city_words: &[(String, String)]) -> Self {
        let mut vocabulary = Vocabulary {
            short: FxHashMap::default(),
            long: FxHashMap::default(),
            words: Vec::new(),
            legal_forms: Vec::new(),
            city_words: Vec::new(),
        };
        vocabulary.legal_forms = legal_forms.iter().map(|w| vocabulary.intern(w)).collect();
        vocabulary.city_words = city_words
            .iter()
            .map(|(short, long)| (vocabulary.intern(short), vocabulary.intern(long)))
            .collect();
        vocabulary
    }

    pub fn intern(&mut self, word: &str) -> u32 {
        let found = self.get(word);
        if found != UNKNOWN {
            return found;
        }
        let id = self.words.len() as u32;
        assert!(id <= MAX_ID, "more than 2^30 distinct words");
        self.words.push(word.into());
        match packed(word) {
            Some(key) => self.short.insert(key, id),
            None => self.long.insert(word.into(), id),
        };
        id
    }

    pub fn get(&self, word: &str) -> u32 {
        match packed(word) {
            Some(key) => self.short.get(&key),
            None => self.long.get(word),
        }
        .copied()
        .unwrap_or(UNKNOWN)
    }

    pub fn word(&self, id: u32) -> &str {
        &self.words[id as usize]
    }

    /// Trailing legal forms off an employer's words, never down to nothing.
    pub fn employer_form(&self, found: &mut Vec<u32>) {
        while found.len() > 1 && self.legal_forms.contains(found.last().unwrap()) {
            found.pop();
        }
    }

    /// `st`, `ft` and `mt` spelled out in a city's words.
    pub fn city_form(&self, found: &mut [u32]) {
        for word in found.iter_mut() {
            if let Some(&(_, long)) = self.city_words.iter().find(|(short, _)| short == word) {
                *word = long;
            }
        }
    }
}
