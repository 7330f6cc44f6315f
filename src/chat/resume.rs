//! Resume tokens: what lets a visitor whose connection broke take its chat up again on a new
//! one (`/ws?resume=<token>`). A token is 128 random bits, written as 32 lowercase hex digits,
//! made for one visitor in one chat and spent when used (the resumed connection gets the next).
//! It is a bearer secret: it is never logged, and only its SHA-256 leaves the process that
//! made it (the key other processes find it by, see `cluster`).

use std::fmt;

use sha2::{Digest, Sha256};

/// One visitor's resume token for one chat.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Token(u128);

/// Digits of a token as the page sends it.
const HEX_DIGITS: usize = 32;

impl Token {
    /// A fresh token from the system's randomness; `None` when there is none (the chat then
    /// has no token and cannot be resumed).
    pub fn random() -> Option<Token> {
        let mut bytes = [0u8; 16];
        getrandom::fill(&mut bytes).ok()?;
        Some(Token(u128::from_le_bytes(bytes)))
    }

    /// A token as `/ws?resume=` carries it: exactly 32 hex digits, else `None`.
    pub fn parse(text: &str) -> Option<Token> {
        if text.len() != HEX_DIGITS || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        u128::from_str_radix(text, 16).ok().map(Token)
    }

    /// The token as the client gets it.
    pub fn to_hex(self) -> String {
        format!("{:032x}", self.0)
    }

    /// What others may know the token by (a Redis key): its SHA-256, in hex. Whoever reads
    /// it cannot resume anyone's chat with it.
    pub fn digest(self) -> String {
        let sum = Sha256::digest(self.to_hex().as_bytes());
        sum.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// Never shows the token itself: a `Debug` print in a log line must not leak it.
impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(…)")
    }
}

/// What `/ws?resume=` asked for: a token, or something that cannot be one (answered
/// `resume_failed` all the same).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ask {
    Token(Token),
    Malformed,
}

/// The `resume` parameter of a query string, if there is one.
pub fn ask_of(query: &str) -> Option<Ask> {
    let value = query
        .split('&')
        .find_map(|pair| pair.strip_prefix("resume="))?;
    Some(Token::parse(value).map_or(Ask::Malformed, Ask::Token))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_round_trip_as_hex_and_never_debug_print() {
        let a = Token::random().unwrap();
        let b = Token::random().unwrap();
        assert_ne!(a, b);
        let hex = a.to_hex();
        assert_eq!(hex.len(), 32);
        assert_eq!(Token::parse(&hex), Some(a));
        assert_eq!(Token::parse(&hex.to_uppercase()), Some(a));
        assert!(!format!("{a:?}").contains(&hex[..8]));
        assert_eq!(a.digest().len(), 64);
        assert_ne!(a.digest(), b.digest());
    }

    #[test]
    fn only_32_hex_digits_are_a_token() {
        for bad in [
            "",
            "abc",
            &"g".repeat(32),
            &"0".repeat(31),
            &"0".repeat(33),
            "+1",
        ] {
            assert_eq!(Token::parse(bad), None, "{bad}");
        }
        assert_eq!(ask_of("visitor=x"), None);
        assert_eq!(ask_of("visitor=x&resume=zz"), Some(Ask::Malformed));
        let t = Token::random().unwrap();
        assert_eq!(
            ask_of(&format!("resume={}&visitor=x", t.to_hex())),
            Some(Ask::Token(t))
        );
    }
}
