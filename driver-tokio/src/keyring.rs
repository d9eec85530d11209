//! Gossip encryption (issue 8; memberlist's keyring is the reference): every datagram is
//! sealed with AES-256-GCM under the *primary* key and opened with any *installed* key,
//! so keys rotate without downtime: install the new key on every node, make it primary
//! on every node, then remove the old one. A datagram no key opens (unauthenticated,
//! tampered, or from a node with other keys) is counted and dropped before the machine
//! sees it.
//!
//! Wire: `[1 (version)] [12-byte random nonce] [ciphertext + 16-byte tag]`: 29 bytes over
//! the plaintext, well inside a 1,500-byte MTU for the core's datagrams.

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng};
use aes_gcm::{Aes256Gcm, Key, Nonce};

const VERSION: u8 = 1;
const NONCE: usize = 12;
pub const OVERHEAD: usize = 1 + NONCE + 16;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyringError {
    /// Too short, or not our format.
    Malformed,
    /// No installed key authenticates it.
    NoKey,
    /// A key must be 32 bytes (64 hex digits).
    BadKey,
    /// The primary key cannot be removed (make another one primary first).
    RemovingPrimary,
    /// Only an installed key can become primary.
    NotInstalled,
}

impl std::fmt::Display for KeyringError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            KeyringError::Malformed => "not a sealed datagram",
            KeyringError::NoKey => "no installed key opens it",
            KeyringError::BadKey => "a key is 32 bytes, written as 64 hex digits",
            KeyringError::RemovingPrimary => "the primary key cannot be removed",
            KeyringError::NotInstalled => "the key is not installed",
        })
    }
}

impl std::error::Error for KeyringError {}

#[derive(Clone)]
pub struct Keyring {
    /// `keys[0]` is the primary.
    keys: Vec<[u8; 32]>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Keyring({} keys)", self.keys.len()) // never the keys themselves
    }
}

/// A key from its 64 hex digits.
pub fn parse_key(hex_key: &str) -> Result<[u8; 32], KeyringError> {
    let v = hex::decode(hex_key.trim()).map_err(|_| KeyringError::BadKey)?;
    v.try_into().map_err(|_| KeyringError::BadKey)
}

impl Keyring {
    pub fn new(primary: [u8; 32]) -> Keyring {
        Keyring {
            keys: vec![primary],
        }
    }

    /// From hex keys, the first primary.
    pub fn from_hex(keys: &[String]) -> Result<Keyring, KeyringError> {
        let mut it = keys.iter();
        let mut ring = Keyring::new(parse_key(it.next().ok_or(KeyringError::BadKey)?)?);
        for k in it {
            ring.install(parse_key(k)?);
        }
        Ok(ring)
    }

    /// Accept datagrams sealed with `key` too.
    pub fn install(&mut self, key: [u8; 32]) {
        if !self.keys.contains(&key) {
            self.keys.push(key);
        }
    }

    /// Seal with `key` from now on (it must be installed).
    pub fn use_primary(&mut self, key: [u8; 32]) -> Result<(), KeyringError> {
        let i = self
            .keys
            .iter()
            .position(|k| *k == key)
            .ok_or(KeyringError::NotInstalled)?;
        self.keys.swap(0, i);
        Ok(())
    }

    pub fn remove(&mut self, key: [u8; 32]) -> Result<(), KeyringError> {
        if self.keys[0] == key {
            return Err(KeyringError::RemovingPrimary);
        }
        self.keys.retain(|k| *k != key);
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn seal(&self, plain: &[u8]) -> Vec<u8> {
        let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&self.keys[0]));
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let ct = cipher
            .encrypt(&nonce, plain)
            .expect("AES-GCM seals any datagram-sized input");
        let mut out = Vec::with_capacity(OVERHEAD + plain.len());
        out.push(VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        out
    }

    pub fn open(&self, sealed: &[u8]) -> Result<Vec<u8>, KeyringError> {
        if sealed.len() < OVERHEAD || sealed[0] != VERSION {
            return Err(KeyringError::Malformed);
        }
        let nonce = Nonce::from_slice(&sealed[1..1 + NONCE]);
        for k in &self.keys {
            let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(k));
            if let Ok(p) = cipher.decrypt(nonce, &sealed[1 + NONCE..]) {
                return Ok(p);
            }
        }
        Err(KeyringError::NoKey)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const K1: [u8; 32] = [1; 32];
    const K2: [u8; 32] = [2; 32];

    #[test]
    fn sealed_datagrams_open_with_any_installed_key_and_nothing_else() {
        let a = Keyring::new(K1);
        let msg = b"a ping, say";
        let sealed = a.seal(msg);
        assert_eq!(sealed.len(), msg.len() + OVERHEAD);
        assert_ne!(&sealed[OVERHEAD - 16..OVERHEAD - 16 + msg.len()], msg);
        assert_eq!(a.open(&sealed).unwrap(), msg);
        // Fresh nonce each time.
        assert_ne!(a.seal(msg), sealed);
        // Another key: refused. Tampered: refused. Plaintext, short: malformed.
        assert_eq!(Keyring::new(K2).open(&sealed), Err(KeyringError::NoKey));
        let mut bent = sealed.clone();
        *bent.last_mut().unwrap() ^= 1;
        assert_eq!(a.open(&bent), Err(KeyringError::NoKey));
        assert_eq!(a.open(msg), Err(KeyringError::Malformed));
        assert_eq!(a.open(&[]), Err(KeyringError::Malformed));
    }

    /// memberlist's rotation: install everywhere, switch primaries, remove the old key;
    /// every node understands every other at every stage.
    #[test]
    fn keys_rotate_without_a_gap() {
        let mut a = Keyring::new(K1);
        let mut b = Keyring::new(K1);
        let talk = |x: &Keyring, y: &Keyring| y.open(&x.seal(b"hi")).is_ok();
        a.install(K2);
        assert!(talk(&a, &b) && talk(&b, &a));
        b.install(K2);
        a.use_primary(K2).unwrap();
        assert!(talk(&a, &b) && talk(&b, &a));
        b.use_primary(K2).unwrap();
        assert_eq!(a.remove(K2), Err(KeyringError::RemovingPrimary));
        a.remove(K1).unwrap();
        assert!(talk(&a, &b) && talk(&b, &a));
        b.remove(K1).unwrap();
        assert!(talk(&a, &b) && talk(&b, &a));
        assert!(!talk(&Keyring::new(K1), &b));
        assert_eq!(a.use_primary(K1), Err(KeyringError::NotInstalled));
    }

    #[test]
    fn keys_are_64_hex_digits() {
        let k = Keyring::from_hex(&["01".repeat(32), "02".repeat(32)]).unwrap();
        assert_eq!(k.len(), 2);
        assert!(Keyring::from_hex(&["01".repeat(31)]).is_err());
        assert!(Keyring::from_hex(&["zz".repeat(32)]).is_err());
        assert!(Keyring::from_hex(&[]).is_err());
        assert_eq!(format!("{k:?}"), "Keyring(2 keys)");
    }
}
