//! Admin accounts: names, argon2id password hashes (default parameters, a fresh salt each),
//! and the commands `pairchat admin add|remove|list` run. A password is never stored, logged
//! or compared as text: argon2's verification compares in constant time.

use anyhow::Context;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::Argon2;

use super::audit::{self, Action};
use crate::db::admin::{self as rows, AccountRow};
use crate::db::DbConn;

/// Longest account name.
pub const MAX_NAME_CHARS: usize = 64;
/// Shortest password `admin add` accepts.
pub const MIN_PASSWORD_CHARS: usize = 12;
/// Characters of a generated password: 20 of 62 symbols, about 119 bits.
const GENERATED_CHARS: usize = 20;
const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
/// Who the audit log names for what the command line did.
pub const COMMAND_LINE: &str = "(command line)";

/// A name: 1 to 64 of `A-Z a-z 0-9 . _ -`, so it shows and logs as it is.
pub fn valid_name(name: &str) -> anyhow::Result<&str> {
    let ok = !name.is_empty()
        && name.chars().count() <= MAX_NAME_CHARS
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    anyhow::ensure!(
        ok,
        "an account name is 1 to {MAX_NAME_CHARS} of A-Z a-z 0-9 . _ - (got {name:?})"
    );
    Ok(name)
}

/// The argon2id hash of `password` in PHC string format.
pub fn hash_password(password: &str) -> anyhow::Result<String> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|hash| hash.to_string())
        .map_err(|e| anyhow::anyhow!("cannot hash the password: {e}"))
}

/// Whether `password` matches `hash`; a hash that does not parse matches nothing.
pub fn verify_password(password: &str, hash: &str) -> bool {
    Argon2::default()
        .verify_password(password.as_bytes(), hash)
        .is_ok()
}

/// A hash of a password nobody knows, checked when the account named does not exist, so that
/// a sign-in takes as long either way and its time does not tell whether a name exists.
pub fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| {
        let password = generate_password().unwrap_or_default();
        hash_password(&password).unwrap_or_default()
    })
}

/// A random password of letters and digits, from the system's randomness.
pub fn generate_password() -> anyhow::Result<String> {
    let mut bytes = [0u8; GENERATED_CHARS * 2];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no system randomness: {e}"))?;
    // Two bytes per character, reduced modulo 62: the bias (65536 mod 62 = 2) is negligible.
    Ok(bytes
        .chunks(2)
        .map(|pair| {
            let n = usize::from(u16::from_le_bytes([pair[0], pair[1]]));
            char::from(ALPHABET[n % ALPHABET.len()])
        })
        .collect())
}

/// Adds the account `name` with `password`; refuses a taken name or a short password.
pub fn add(conn: &mut DbConn, name: &str, password: &str) -> anyhow::Result<()> {
    let name = valid_name(name)?;
    anyhow::ensure!(
        password.chars().count() >= MIN_PASSWORD_CHARS,
        "the password must be at least {MIN_PASSWORD_CHARS} characters"
    );
    let row = AccountRow {
        id: fastrand::i64(..),
        name: name.to_owned(),
        password_hash: hash_password(password)?,
        session_epoch: 0,
        created_ms: super::now_ms(),
    };
    let added = rows::insert_account(conn, &row).context("cannot add the account")?;
    anyhow::ensure!(added, "an account named {name:?} exists already");
    audit::record(conn, COMMAND_LINE, Action::AccountAdded, name)?;
    Ok(())
}

/// Removes the account `name`; its sessions end with it.
pub fn remove(conn: &mut DbConn, name: &str) -> anyhow::Result<()> {
    let removed = rows::delete_account(conn, name).context("cannot remove the account")?;
    anyhow::ensure!(removed, "there is no account named {name:?}");
    audit::record(conn, COMMAND_LINE, Action::AccountRemoved, name)?;
    Ok(())
}

/// Every account, by name.
pub fn list(conn: &mut DbConn) -> anyhow::Result<Vec<AccountRow>> {
    rows::accounts(conn).context("cannot list the accounts")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_hash_as_argon2id_and_verify_only_themselves() {
        let hash = hash_password("correct horse battery").expect("hash");
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(verify_password("correct horse battery", &hash));
        assert!(!verify_password("correct horse batterY", &hash));
        assert!(!verify_password("correct horse battery", "not a hash"));
        assert_ne!(hash, hash_password("correct horse battery").expect("hash"));
    }

    #[test]
    fn generated_passwords_are_long_and_differ() {
        let a = generate_password().expect("a");
        assert_eq!(a.len(), GENERATED_CHARS);
        assert!(a.bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_ne!(a, generate_password().expect("b"));
    }

    #[test]
    fn names_are_plain() {
        assert!(valid_name("alice.b-c_9").is_ok());
        for bad in ["", "a b", "<x>", &"a".repeat(65)] {
            assert!(valid_name(bad).is_err(), "{bad}");
        }
    }
}
