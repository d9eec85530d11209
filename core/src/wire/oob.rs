//! The out-of-band probe channel's wire form (membership.md §9, §10: "OOB | type, reply
//! addr | OOB port | 1-8").
//!
//! An OOB frame travels on its own socket (the driver binds the node's port + 100) so a
//! node whose main socket is backed up still answers it: it asks only "is the process
//! there, and is it overloaded?". Three kinds, with §9's type bytes: 0x01 probe, 0x02
//! ack (alive), 0x03 nack (alive but overloaded).
//!
//! Layout, postcard like every other message: `version u8, type u8, seq varint u32`, 3 to
//! 7 bytes. Two choices against §10's sketch: a sequence number instead of the reply
//! address (an answer goes back to where the probe came from, as every other answer
//! does, and the sequence lets the prober match it to the probe it sent and drop stale
//! or forged ones), and a version byte first like the envelope's, so a later change is
//! detected before anything else is read.

use super::DecodeError;
use serde::{Deserialize, Serialize};

/// Bumped on any incompatible change of [`OobFrame`].
pub const OOB_VERSION: u8 = 1;
/// An OOB datagram is at most this long (membership.md §9: `<= 64 B`); a longer one is
/// refused unread.
pub const MAX_OOB_DATAGRAM: usize = 64;

/// What an OOB frame says, with membership.md §9's type bytes on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "u8", into = "u8")]
pub enum OobKind {
    /// 0x01: "are you there?"
    Probe,
    /// 0x02: alive.
    Ack,
    /// 0x03: alive, but overloaded.
    Nack,
}

impl From<OobKind> for u8 {
    fn from(k: OobKind) -> u8 {
        match k {
            OobKind::Probe => 0x01,
            OobKind::Ack => 0x02,
            OobKind::Nack => 0x03,
        }
    }
}

impl TryFrom<u8> for OobKind {
    type Error = &'static str;
    fn try_from(b: u8) -> Result<OobKind, Self::Error> {
        match b {
            0x01 => Ok(OobKind::Probe),
            0x02 => Ok(OobKind::Ack),
            0x03 => Ok(OobKind::Nack),
            _ => Err("unknown OOB type"),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct OobFrame {
    /// Always first on the wire.
    pub version: u8,
    pub kind: OobKind,
    /// The probe's sequence number; an answer echoes it.
    pub seq: u32,
}

impl OobFrame {
    pub fn new(kind: OobKind, seq: u32) -> OobFrame {
        OobFrame {
            version: OOB_VERSION,
            kind,
            seq,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        // Infallible: three fixed fields, at most 7 bytes.
        postcard::to_allocvec(self).expect("an OOB frame always serializes")
    }

    /// Decode one OOB datagram. Never panics on any input.
    pub fn decode(bytes: &[u8]) -> Result<OobFrame, DecodeError> {
        let first = *bytes.first().ok_or(DecodeError::Empty)?;
        if bytes.len() > MAX_OOB_DATAGRAM {
            return Err(DecodeError::TooLarge {
                len: bytes.len(),
                max: MAX_OOB_DATAGRAM,
            });
        }
        if first != OOB_VERSION {
            return Err(DecodeError::UnsupportedVersion(first));
        }
        super::take_whole(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_type_byte_is_the_specs_and_a_frame_fits_in_eight_bytes() {
        for (kind, byte) in [
            (OobKind::Probe, 0x01),
            (OobKind::Ack, 0x02),
            (OobKind::Nack, 0x03),
        ] {
            let bytes = OobFrame::new(kind, u32::MAX).encode();
            assert_eq!(bytes[0], OOB_VERSION);
            assert_eq!(bytes[1], byte);
            assert!(bytes.len() <= 8, "{} bytes", bytes.len());
            assert_eq!(OobFrame::new(kind, 7).encode(), vec![OOB_VERSION, byte, 7]);
        }
    }

    #[test]
    fn bad_frames_are_typed_errors() {
        assert_eq!(OobFrame::decode(&[]), Err(DecodeError::Empty));
        assert_eq!(
            OobFrame::decode(&[9, 1, 0]),
            Err(DecodeError::UnsupportedVersion(9))
        );
        assert_eq!(OobFrame::decode(&[1, 4, 0]), Err(DecodeError::Malformed));
        assert_eq!(OobFrame::decode(&[1, 1]), Err(DecodeError::Malformed));
        assert_eq!(
            OobFrame::decode(&[1, 1, 0, 0]),
            Err(DecodeError::TrailingBytes(1))
        );
        assert_eq!(
            OobFrame::decode(&[1; 65]),
            Err(DecodeError::TooLarge { len: 65, max: 64 })
        );
    }

    proptest! {
        #[test]
        fn every_frame_round_trips(kind in 1u8..=3, seq in any::<u32>()) {
            let frame = OobFrame::new(OobKind::try_from(kind).unwrap(), seq);
            prop_assert_eq!(OobFrame::decode(&frame.encode()), Ok(frame));
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..100)) {
            // A typed error, or a frame of 3 to 7 bytes that starts with the version.
            if OobFrame::decode(&bytes).is_ok() {
                prop_assert_eq!(bytes[0], OOB_VERSION);
                prop_assert!((3..=7).contains(&bytes.len()));
            }
        }
    }
}
