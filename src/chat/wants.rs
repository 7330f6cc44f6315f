//! What a visitor asks of a partner: up to five interests (tags) and a language, and whether
//! it will talk to anyone once nobody suitable has come (`fallback`). Tags are normalised here,
//! once, as they arrive: trimmed, Unicode NFC, lower-cased, inner whitespace collapsed to one
//! space; so that "Café  Racer" and "café racer" (either way of writing é) are one tag.

use unicode_normalization::UnicodeNormalization;

/// Most interests a request may carry.
pub const MAX_INTERESTS: usize = 5;
/// Longest tag, in characters (Unicode scalar values), after normalisation.
pub const MAX_TAG_CHARS: usize = 32;

/// The languages of the page (the catalogues'): a visitor is preferably paired with one of the
/// same.
pub use crate::i18n::Lang;

/// The language a request names (`en`, `ru-RU`, `zh_CN`…): its primary subtag, when it is one
/// of ours; `None` for any other (no preference, not an error).
pub fn parse_lang(tag: &str) -> Option<Lang> {
    Lang::from_code(tag.split(['-', '_']).next().unwrap_or_default())
}

/// What one request asks for. The default asks for nothing: anyone will do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wants {
    /// Normalised, distinct, in the order given; at most `MAX_INTERESTS`.
    pub interests: Vec<String>,
    pub lang: Option<Lang>,
    /// Whether it takes anyone once its fallback time has come (the default).
    pub fallback: bool,
}

impl Default for Wants {
    fn default() -> Self {
        Wants {
            interests: Vec::new(),
            lang: None,
            fallback: true,
        }
    }
}

impl Wants {
    /// Whether it minds who it meets at all.
    pub fn is_choosy(&self) -> bool {
        !self.interests.is_empty() || self.lang.is_some()
    }
}

/// Why a list of interests was refused (the `bad_interests` error's detail).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadInterests {
    #[error("\"interests\" must be an array of strings")]
    NotAList,
    #[error("at most {MAX_INTERESTS} interests")]
    TooMany,
    #[error("each interest is 1 to {MAX_TAG_CHARS} characters, without control characters")]
    BadTag,
}

/// One tag, normalised: NFC, lower-cased, whitespace trimmed and collapsed. `None` when it is
/// empty, too long, or holds a control character.
pub fn normalize_tag(raw: &str) -> Option<String> {
    if raw.chars().any(|c| c.is_control() && !c.is_whitespace()) {
        return None;
    }
    let lowered: String = raw.nfc().collect::<String>().to_lowercase();
    let collapsed = lowered.split_whitespace().collect::<Vec<_>>().join(" ");
    // Lower-casing may leave a sequence that composes further.
    let tag: String = collapsed.nfc().collect();
    let chars = tag.chars().count();
    (1..=MAX_TAG_CHARS).contains(&chars).then_some(tag)
}

/// A request's interests, normalised and with duplicates merged, in the order given.
pub fn normalize_interests<'a>(
    raw: impl IntoIterator<Item = &'a str>,
) -> Result<Vec<String>, BadInterests> {
    let mut tags: Vec<String> = Vec::new();
    for raw in raw {
        let tag = normalize_tag(raw).ok_or(BadInterests::BadTag)?;
        if !tags.contains(&tag) {
            if tags.len() == MAX_INTERESTS {
                return Err(BadInterests::TooMany);
            }
            tags.push(tag);
        }
    }
    Ok(tags)
}

/// Tags as a database row keeps them: joined by newlines (a tag never holds one).
pub fn join_tags(tags: &[String]) -> String {
    tags.join("\n")
}

/// The tags of a database row.
pub fn split_tags(joined: &str) -> Vec<String> {
    if joined.is_empty() {
        Vec::new()
    } else {
        joined.split('\n').map(str::to_owned).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_trimmed_lowercased_collapsed_and_composed() {
        assert_eq!(normalize_tag("  Music ").as_deref(), Some("music"));
        assert_eq!(
            normalize_tag("Café \t\n Racer").as_deref(),
            Some("café racer")
        );
        // e + combining acute accent (NFD) is the precomposed é (NFC).
        let decomposed = "Cafe\u{301}";
        assert_eq!(normalize_tag(decomposed).as_deref(), Some("caf\u{e9}"));
        assert_eq!(normalize_tag("ГОРОД").as_deref(), Some("город"));
        assert_eq!(normalize_tag("音乐").as_deref(), Some("音乐"));
        // Non-breaking and ideographic spaces are whitespace too.
        assert_eq!(normalize_tag("a\u{a0}\u{3000}b").as_deref(), Some("a b"));
    }

    #[test]
    fn a_tag_is_one_to_thirty_two_characters_without_control_characters() {
        assert_eq!(normalize_tag(""), None);
        assert_eq!(normalize_tag("   "), None);
        assert_eq!(normalize_tag("a\u{0}b"), None);
        assert_eq!(normalize_tag("a\u{1b}[31m"), None);
        let longest = "я".repeat(MAX_TAG_CHARS);
        assert_eq!(normalize_tag(&longest), Some(longest.clone()));
        assert_eq!(normalize_tag(&format!("{longest}я")), None);
        // Counted after collapsing: 32 characters with runs of spaces inside are fine.
        let spaced = format!("{}     {}", "a".repeat(15), "b".repeat(16));
        assert_eq!(normalize_tag(&spaced).map(|t| t.chars().count()), Some(32));
        // 31 decomposed letters with accents are 31 characters once composed.
        let accented = "e\u{301}".repeat(31);
        assert_eq!(
            normalize_tag(&accented).map(|t| t.chars().count()),
            Some(31)
        );
    }

    #[test]
    fn at_most_five_distinct_interests_duplicates_merged_after_normalising() {
        assert_eq!(
            normalize_interests(["Music", "go", " music", "GO", "cafe\u{301}", "caf\u{e9}"]),
            Ok(vec!["music".into(), "go".into(), "caf\u{e9}".into()])
        );
        assert_eq!(
            normalize_interests(["a", "b", "c", "d", "e"]).map(|t| t.len()),
            Ok(5)
        );
        assert_eq!(
            normalize_interests(["a", "b", "c", "d", "e", "f"]),
            Err(BadInterests::TooMany)
        );
        assert_eq!(normalize_interests(["a", " "]), Err(BadInterests::BadTag));
        assert_eq!(normalize_interests([]), Ok(vec![]));
    }

    #[test]
    fn languages_are_read_by_their_primary_subtag() {
        assert_eq!(parse_lang("ru"), Some(Lang::Ru));
        assert_eq!(parse_lang("zh-CN"), Some(Lang::Zh));
        assert_eq!(parse_lang("EN_gb"), Some(Lang::En));
        assert_eq!(parse_lang("de"), None);
        assert_eq!(parse_lang(""), None);
    }

    #[test]
    fn tags_round_trip_through_a_row() {
        let tags = vec!["music".to_string(), "café racer".to_string()];
        assert_eq!(split_tags(&join_tags(&tags)), tags);
        assert!(split_tags("").is_empty());
    }
}
