//! The per-deployment secret key, and the keyed hash made with it. The database keeps a
//! visitor's address or page token only as this hash, so that a reader of the database (a
//! shared one, a backup) cannot reverse it without the key: IPv4's 2^32 addresses would take
//! minutes to try against an unkeyed hash.

use std::hash::Hasher;
use std::io::Write;
use std::path::Path;

use anyhow::Context;
use siphasher::sip::SipHasher13;

/// Hex digits in a key file: 128 bits.
const KEY_HEX_DIGITS: usize = 32;

#[derive(Clone)]
pub struct SecretKey([u8; 16]);

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(..)")
    }
}

impl SecretKey {
    /// A fresh random key (tests, and a server run without a key file).
    pub fn random() -> anyhow::Result<Self> {
        let mut key = [0u8; 16];
        getrandom::fill(&mut key).map_err(|e| anyhow::anyhow!("no system randomness: {e}"))?;
        Ok(SecretKey(key))
    }

    /// The key in `path` (32 hex digits), written there first if the file does not exist. Only
    /// the owner may read a file it creates.
    pub fn load_or_create(path: &Path) -> anyhow::Result<Self> {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::parse(text.trim()).with_context(|| {
                format!(
                    "{} does not hold a key: it must be {KEY_HEX_DIGITS} hex digits \
                     (e.g. `openssl rand -hex 16`)",
                    path.display()
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = Self::random()?;
                match key.create(path) {
                    Ok(()) => {
                        tracing::info!(path = %path.display(), "generated a new secret key");
                        Ok(key)
                    }
                    // Another process created it first: use that one.
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                        Self::load_or_create(path)
                    }
                    Err(e) => Err(e)
                        .with_context(|| format!("cannot write the key file {}", path.display())),
                }
            }
            Err(e) => {
                Err(e).with_context(|| format!("cannot read the key file {}", path.display()))
            }
        }
    }

    fn parse(hex: &str) -> anyhow::Result<Self> {
        anyhow::ensure!(hex.len() == KEY_HEX_DIGITS, "wrong length");
        let mut key = [0u8; 16];
        for (i, byte) in key.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16)?;
        }
        Ok(SecretKey(key))
    }

    /// Writes the key to a file of its own, then links it into place: a server starting at
    /// the same moment either finds no file or the whole key, and never overwrites one.
    fn create(&self, path: &Path) -> std::io::Result<()> {
        let mut name = path.as_os_str().to_owned();
        name.push(format!(".{}.tmp", std::process::id()));
        let temp = std::path::PathBuf::from(name);
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let written = options.open(&temp).and_then(|mut file| {
            let hex: String = self.0.iter().map(|b| format!("{b:02x}")).collect();
            writeln!(file, "{hex}")?;
            file.sync_all()
        });
        let linked = written.and_then(|()| std::fs::hard_link(&temp, path));
        let _ = std::fs::remove_file(&temp);
        linked
    }

    /// A 256-bit key of its own for `purpose` (HKDF-SHA-256 of this key), the same in every
    /// process that shares the key file.
    pub fn derive(&self, purpose: &[u8]) -> [u8; 32] {
        let mut key = [0u8; 32];
        let hkdf = hkdf::Hkdf::<sha2::Sha256>::new(Some(b"pairchat"), &self.0);
        // 32 bytes are far below HKDF-SHA-256's limit (8,160): this cannot fail.
        let _ = hkdf.expand(purpose, &mut key);
        key
    }

    /// The key of the admin session cookie (signed and encrypted by actix-session), derived
    /// from this key so that every process sharing the key file reads the others' cookies.
    pub fn cookie_key(&self) -> actix_web::cookie::Key {
        // `derive_from` expands 32 or more uniformly random bytes into its two keys.
        actix_web::cookie::Key::derive_from(&self.derive(b"admin session cookie"))
    }

    /// SipHash-1-3 of `prefix` and `value` under this key: the same in every process that
    /// shares the key file, so processes sharing a database agree.
    pub fn hash(&self, prefix: &[u8], value: &[u8]) -> i64 {
        let mut hasher = SipHasher13::new_with_key(&self.0);
        hasher.write(prefix);
        hasher.write(value);
        // i64::MIN means "nobody" to the matchmaker.
        (hasher.finish() as i64).max(i64::MIN + 1)
    }

    /// A key for another purpose (`label`), made from this one as hex: every process that
    /// shares the key file derives the same, and it tells nothing of this key or the others.
    pub fn derive_hex(&self, label: &[u8]) -> String {
        use siphasher::sip128::Hasher128;
        let mut hasher = siphasher::sip128::SipHasher13::new_with_key(&self.0);
        hasher.write(b"derive:");
        hasher.write(label);
        let hash = hasher.finish128().as_bytes();
        hash.iter().map(|b| format!("{b:02x}")).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_file_is_created_once_and_read_back() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("pairchat.key");
        let first = SecretKey::load_or_create(&path).expect("created");
        let again = SecretKey::load_or_create(&path).expect("read");
        assert_eq!(
            first.hash(b"ip:", b"10.0.0.1"),
            again.hash(b"ip:", b"10.0.0.1")
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn different_keys_give_different_hashes_and_bad_files_are_refused() {
        let a = SecretKey::random().expect("a");
        let b = SecretKey::random().expect("b");
        assert_ne!(a.hash(b"ip:", b"10.0.0.1"), b.hash(b"ip:", b"10.0.0.1"));
        assert_ne!(a.derive_hex(b"altcha"), b.derive_hex(b"altcha"));
        assert_ne!(a.derive_hex(b"altcha"), a.derive_hex(b"other"));
        assert_eq!(a.derive_hex(b"altcha"), a.clone().derive_hex(b"altcha"));
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("bad.key");
        std::fs::write(&path, "not a key").expect("write");
        let err = SecretKey::load_or_create(&path).expect_err("refused");
        assert!(format!("{err:#}").contains("bad.key"), "{err:#}");
    }
}
