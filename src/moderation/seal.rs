//! The report a visitor may still make after its chat has closed: the server hands the page,
//! as the chat ends, the evidence and the partner's keys sealed (XChaCha20-Poly1305 under a
//! key derived from the deployment's secret key), and takes them back with `POST /report`.
//! Every process of a cluster shares the key file, so any of them opens what another sealed;
//! nobody without the key can read or forge one.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chacha20poly1305::aead::{Aead, Generate, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use serde::{Deserialize, Serialize};

use super::reports::Line;
use crate::secret::SecretKey;

/// How long after its chat a visitor may still report.
pub const REPORT_AFTER_CHAT_MS: i64 = 10 * 60 * 1000;
/// What the sealing key is derived for (HKDF's `info`): a key of its own for this one use.
const PURPOSE: &[u8] = b"pairchat report seal v1";
/// Bytes of an XChaCha20 nonce, at the start of every sealed report.
const NONCE_BYTES: usize = 24;

/// What a sealed report holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sealed {
    /// The partner's visitor key and address key.
    pub reported: i64,
    pub reported_address: i64,
    pub reporter: i64,
    pub evidence: Vec<Line>,
    /// Until when it may be used (milliseconds since the epoch).
    pub until_ms: i64,
}

/// Seals and opens reports with one deployment's key.
pub struct Sealer {
    cipher: XChaCha20Poly1305,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(..)")
    }
}

impl Sealer {
    pub fn new(secret: &SecretKey) -> Self {
        let key = secret.derive(PURPOSE);
        Sealer {
            cipher: XChaCha20Poly1305::new(&key.into()),
        }
    }

    /// The report as the page carries it: base64url of nonce and ciphertext.
    pub fn seal(&self, sealed: &Sealed) -> Option<String> {
        let plain = serde_json::to_vec(sealed).ok()?;
        let nonce = XNonce::generate();
        let mut out = nonce.to_vec();
        out.extend(self.cipher.encrypt(&nonce, plain.as_slice()).ok()?);
        Some(URL_SAFE_NO_PAD.encode(out))
    }

    /// Opens a sealed report: `None` when it is not one of ours (forged, altered, or sealed
    /// under another key). Its id (from its nonce) is the same every time, so that one chat is
    /// reported once.
    pub fn open(&self, token: &str) -> Option<(i64, Sealed)> {
        let bytes = URL_SAFE_NO_PAD.decode(token.trim()).ok()?;
        if bytes.len() <= NONCE_BYTES {
            return None;
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_BYTES);
        let nonce = XNonce::try_from(nonce).ok()?;
        let plain = self.cipher.decrypt(&nonce, ciphertext).ok()?;
        let sealed = serde_json::from_slice(&plain).ok()?;
        let mut id = [0u8; 8];
        id.copy_from_slice(&nonce[..8]);
        Some(((i64::from_le_bytes(id) & i64::MAX).max(1), sealed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_report_opens_under_the_same_key_only_and_not_once_altered() {
        let key = SecretKey::random().expect("key");
        let sealed = Sealed {
            reported: 1,
            reported_address: 2,
            reporter: 3,
            evidence: vec![],
            until_ms: 4,
        };
        let token = Sealer::new(&key).seal(&sealed).expect("sealed");
        let (id, opened) = Sealer::new(&key).open(&token).expect("opens");
        assert_eq!(opened, sealed);
        assert_eq!(Sealer::new(&key).open(&token).map(|o| o.0), Some(id));
        let other = SecretKey::random().expect("key");
        assert!(Sealer::new(&other).open(&token).is_none());
        let mut altered = token.into_bytes();
        let last = altered.len() - 2;
        altered[last] = if altered[last] == b'A' { b'B' } else { b'A' };
        let altered = String::from_utf8(altered).expect("ascii");
        assert!(Sealer::new(&key).open(&altered).is_none());
        assert!(Sealer::new(&key).open("").is_none());
    }
}
