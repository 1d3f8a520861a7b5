//! Finding a pre-tokenizer piece's tokens without the byte-pair encoder,
//! where it can: the vocabulary's short tokens in a fixed set, and each
//! thread's recent pieces in a small table in front of it.

use super::splitter::Encoding;

/// Every token of an encoding up to 15 bytes long, packed into a `u128`
/// (see [`token_key`]), to find a piece that is one token without running
/// the byte-pair encoder: bpe keeps its own lookup private. Packed, a lookup
/// reads the table alone; a set of byte slices read each candidate's bytes
/// too, a second cache miss per piece. About 2 MiB for cl100k_base, built on
/// first use, so most lookups miss the CPU's caches: each thread keeps the
/// pieces it encoded last, tokens or not, in a small direct-mapped table in
/// front of it ([`Recent`]), where the frequent words of a text stay.
pub(super) struct TokenSet {
    all: std::collections::HashSet<u128, std::hash::BuildHasherDefault<KeyHasher>>,
    /// Which of a thread's [`RECENT`] tables is this set's: its encoding's.
    id: usize,
}

/// Slots in a thread's table of recent pieces, per encoding: 384 KiB.
const RECENT_SLOTS: usize = 16384;

/// A thread's recent pieces of one encoding: in each slot (the one its key's
/// hash picks) a piece's key and its tokens' byte lengths, four bits each
/// from the low end (every token of a piece of 15 bytes or less is 1 to 15
/// bytes long, so a 0 ends them). Key 0 (no piece) marks an empty slot.
struct Recent {
    keys: Box<[u128]>,
    lens: Box<[u64]>,
}

impl Recent {
    fn new() -> Self {
        Recent {
            keys: vec![0; RECENT_SLOTS].into_boxed_slice(),
            lens: vec![0; RECENT_SLOTS].into_boxed_slice(),
        }
    }
}

thread_local! {
    /// Per encoding (in [`Encoding`]'s order), the pieces this thread encoded last.
    static RECENT: std::cell::RefCell<[Recent; 2]> =
        std::cell::RefCell::new([Recent::new(), Recent::new()]);
}

impl TokenSet {
    pub(super) fn new(encoding: Encoding) -> Self {
        let tok = encoding.tokenizer();
        let n = tok.bpe.num_tokens();
        let mut all = std::collections::HashSet::with_capacity_and_hasher(n, Default::default());
        all.extend((0..n as u32).filter_map(|t| token_key(tok.bpe.token_bytes(t))));
        TokenSet {
            all,
            id: encoding as usize,
        }
    }

    /// Run `f` with this set's lookup on this thread (see [`Lookup`]).
    pub(super) fn lookup<R>(&self, f: impl FnOnce(&mut Lookup) -> R) -> R {
        RECENT.with(|recent| {
            f(&mut Lookup {
                all: &self.all,
                recent: &mut recent.borrow_mut()[self.id],
            })
        })
    }
}

/// A [`TokenSet`] with the thread's table of recent pieces in front.
pub(super) struct Lookup<'a> {
    all: &'a std::collections::HashSet<u128, std::hash::BuildHasherDefault<KeyHasher>>,
    recent: &'a mut Recent,
}

impl Lookup<'_> {
    /// The byte lengths of `piece`'s tokens, packed as in [`Recent`], for a
    /// piece of up to 15 bytes: from the thread's recent pieces, else one
    /// token if the piece is in the set, else the byte-pair encoder's.
    pub(super) fn token_lens(
        &mut self,
        piece: &[u8],
        bpe: &bpe_openai::byte_pair_encoding::BytePairEncoding,
    ) -> Option<u64> {
        let key = token_key(piece)?;
        let slot = key_hash(key) as usize % RECENT_SLOTS;
        if self.recent.keys[slot] == key {
            return Some(self.recent.lens[slot]);
        }
        let lens = if self.all.contains(&key) {
            piece.len() as u64
        } else {
            let tokens = bpe.encode_via_backtracking(piece);
            tokens
                .iter()
                .rev()
                .fold(0, |acc, &t| acc << 4 | bpe.token_len(t) as u64)
        };
        self.recent.keys[slot] = key;
        self.recent.lens[slot] = lens;
        Some(lens)
    }
}

/// `bytes` (at most 15) little-endian in the low bytes, the length in the top
/// byte: distinct byte strings, distinct keys.
fn token_key(bytes: &[u8]) -> Option<u128> {
    if bytes.len() > 15 {
        return None;
    }
    let mut w = [0u8; 16];
    w[..bytes.len()].copy_from_slice(bytes);
    w[15] = bytes.len() as u8;
    Some(u128::from_le_bytes(w))
}

/// splitmix64's finalizer over a key's two halves.
fn key_hash(key: u128) -> u64 {
    let mut z = (key as u64) ^ ((key >> 64) as u64).rotate_left(32);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// [`key_hash`] as a `Hasher`. The keys are fixed (a vocabulary), so a keyed
/// hash buys nothing; the mixing does matter: the bucket comes from the low
/// bits, and a plain multiply's low bits depend only on the input's low bits
/// (a token's first bytes, often a space).
#[derive(Default)]
struct KeyHasher(u64);

impl std::hash::Hasher for KeyHasher {
    fn write(&mut self, bytes: &[u8]) {
        // Not used by the `u128` keys; a plain fold for completeness.
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }

    fn write_u128(&mut self, key: u128) {
        self.0 = key_hash(key);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}
