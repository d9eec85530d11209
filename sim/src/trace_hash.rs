//! The trace hash's hasher: XXH3-64 over the ordered bytes of every input and output.
//!
//! The world feeds the hash many small pieces (a tag byte, an index, a timestamp, then
//! each field of an event through `Hash`). XXH3's streaming `update` costs tens of
//! instructions a call whatever the length, which made the hash ~7% of a 100-node run.
//! [`TraceHasher`] gathers the pieces in a buffer and hands XXH3 whole blocks. A
//! streaming hash depends only on the concatenated bytes, never on how they were cut,
//! so the digest is the one plain XXH3 gives for the same stream (a test checks it).

use std::hash::Hasher;
use xxhash_rust::xxh3::Xxh3;

/// Bytes gathered before XXH3 sees them: a multiple of its 64-byte stripe.
const BUFFER: usize = 512;

pub struct TraceHasher {
    buf: [u8; BUFFER],
    len: usize,
    inner: Xxh3,
}

impl Default for TraceHasher {
    fn default() -> Self {
        Self::new()
    }
}

impl TraceHasher {
    pub fn new() -> Self {
        TraceHasher {
            buf: [0; BUFFER],
            len: 0,
            inner: Xxh3::new(),
        }
    }

    /// Append `bytes` to the stream.
    #[inline]
    pub fn update(&mut self, bytes: &[u8]) {
        if self.len + bytes.len() <= BUFFER {
            self.buf[self.len..self.len + bytes.len()].copy_from_slice(bytes);
            self.len += bytes.len();
        } else {
            self.spill(bytes);
        }
    }

    #[cold]
    fn spill(&mut self, bytes: &[u8]) {
        self.inner.update(&self.buf[..self.len]);
        self.len = 0;
        if bytes.len() >= BUFFER {
            self.inner.update(bytes);
        } else {
            self.buf[..bytes.len()].copy_from_slice(bytes);
            self.len = bytes.len();
        }
    }

    /// The XXH3-64 digest of everything appended so far.
    pub fn digest(&self) -> u64 {
        let mut inner = self.inner.clone();
        inner.update(&self.buf[..self.len]);
        inner.digest()
    }
}

impl Hasher for TraceHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        self.update(bytes);
    }

    fn finish(&self) -> u64 {
        self.digest()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::Hash;

    /// The same stream, cut into pieces of every size around the buffer's, gives plain
    /// XXH3's digest of the whole.
    #[test]
    fn digest_is_plain_xxh3_of_the_stream_however_it_is_cut() {
        let stream: Vec<u8> = (0..5000u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        let want = xxhash_rust::xxh3::xxh3_64(&stream);
        for piece in [1, 3, 7, 64, 511, 512, 513, 1400, 4999] {
            let mut h = TraceHasher::new();
            for chunk in stream.chunks(piece) {
                h.update(chunk);
            }
            assert_eq!(h.digest(), want, "pieces of {piece}");
        }
        // `Hash` impls go through `write`, as they did into `Xxh3` itself.
        let mut ours = TraceHasher::new();
        let mut plain = Xxh3::new();
        for v in [(1u8, 2u32, 3u64, "four"), (5, 6, 7, "eight")] {
            v.hash(&mut ours);
            v.hash(&mut plain);
        }
        assert_eq!(ours.finish(), plain.finish());
        assert_ne!(TraceHasher::new().digest(), want);
    }
}
