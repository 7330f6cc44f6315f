//! One catalogue per language, built once from the `.ftl` compiled into the binary: a Fluent
//! bundle for the server's templates, and the same messages as JSON for the page's script
//! (`compile`), served at `/i18n/<lang>.json` and written into the pages themselves.

use std::sync::LazyLock;

use fluent_bundle::concurrent::FluentBundle;
use fluent_bundle::FluentResource;
use serde_json::json;

use super::{compile, Lang};

/// The Fluent source of a language (`locales/<code>/pairchat.ftl`).
fn source(lang: Lang) -> &'static str {
    match lang {
        Lang::En => include_str!("../../locales/en/pairchat.ftl"),
        Lang::Ru => include_str!("../../locales/ru/pairchat.ftl"),
        Lang::Zh => include_str!("../../locales/zh/pairchat.ftl"),
    }
}

/// A language's messages.
pub struct Catalog {
    lang: Lang,
    bundle: FluentBundle<FluentResource>,
    /// `{"lang": "ru", "messages": {...}}` for the page's script.
    json: String,
    /// A strong validator of `json`.
    etag: String,
}

static CATALOGS: LazyLock<[Catalog; 3]> = LazyLock::new(|| Lang::ALL.map(Catalog::build));

/// The catalogue of `lang`.
pub fn catalog(lang: Lang) -> &'static Catalog {
    &CATALOGS[lang as usize]
}

impl Catalog {
    fn build(lang: Lang) -> Catalog {
        let text = source(lang);
        let id = lang.code().parse().unwrap_or_default();
        let mut bundle = FluentBundle::new_concurrent(vec![id]);
        // Our scripts are all left to right; isolation marks would only get in the way of
        // copying text and of tests.
        bundle.set_use_isolating(false);
        let resource = FluentResource::try_new(text.to_owned()).unwrap_or_else(|(partial, e)| {
            tracing::error!(lang = lang.code(), errors = ?e, "catalogue has syntax errors");
            partial
        });
        if let Err(e) = bundle.add_resource(resource) {
            tracing::error!(lang = lang.code(), errors = ?e, "catalogue has duplicate keys");
        }
        let parsed = fluent_syntax::parser::parse(text).unwrap_or_else(|(partial, _)| partial);
        let (messages, errors) = compile::messages(&parsed);
        if !errors.is_empty() {
            tracing::error!(lang = lang.code(), ?errors, "catalogue messages left out");
        }
        let json = json!({"lang": lang.code(), "messages": messages}).to_string();
        let etag = format!("{:016x}", fnv1a(json.as_bytes()));
        Catalog {
            lang,
            bundle,
            json,
            etag,
        }
    }

    pub fn lang(&self) -> Lang {
        self.lang
    }

    /// The `<html lang>` value.
    pub fn code(&self) -> &'static str {
        self.lang.code()
    }

    /// A message without variables, for a template; its id when there is none (so a missing
    /// key shows, and `cargo test` has already said which).
    pub fn get(&self, id: &str) -> String {
        let Some(pattern) = self.bundle.get_message(id).and_then(|m| m.value()) else {
            tracing::warn!(lang = self.code(), id, "no such message");
            return id.to_owned();
        };
        let mut errors = Vec::new();
        let text = self.bundle.format_pattern(pattern, None, &mut errors);
        if !errors.is_empty() {
            tracing::warn!(
                lang = self.code(),
                id,
                ?errors,
                "message formatted with errors"
            );
        }
        text.into_owned()
    }

    /// The messages for the page's script, as JSON.
    pub fn json(&self) -> &str {
        &self.json
    }

    /// The same, safe inside `<script type="application/json">`: no `<` that could close it.
    pub fn json_for_script(&self) -> String {
        self.json.replace('<', "\\u003c")
    }

    pub fn etag(&self) -> &str {
        &self.etag
    }

    /// The language switch: every language, named in itself, with whether it is this one.
    pub fn switch(&self) -> Vec<(&'static str, String, bool)> {
        Lang::ALL
            .into_iter()
            .map(|l| (l.code(), catalog(l).get("language-name"), l == self.lang))
            .collect()
    }
}

/// FNV-1a, 64 bits: enough to tell one build's catalogue from another's.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The compiled messages of a language, for tests that check them.
#[cfg(test)]
fn compiled(lang: Lang) -> serde_json::Map<String, serde_json::Value> {
    let v: serde_json::Value =
        serde_json::from_str(catalog(lang).json()).unwrap_or(serde_json::Value::Null);
    v["messages"].as_object().cloned().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    use serde_json::Value;

    use fluent_bundle::{FluentArgs, FluentValue};
    use intl_pluralrules::{PluralCategory, PluralRuleType, PluralRules};

    fn parsed(lang: Lang) -> fluent_syntax::ast::Resource<&'static str> {
        fluent_syntax::parser::parse(source(lang))
            .unwrap_or_else(|(_, errors)| panic!("{}: syntax errors: {errors:?}", lang.code()))
    }

    #[test]
    fn i18n_every_catalogue_parses_and_compiles_whole() {
        for lang in Lang::ALL {
            let resource = parsed(lang);
            let (messages, errors) = compile::messages(&resource);
            assert!(errors.is_empty(), "{}: {errors:?}", lang.code());
            assert!(messages.len() > 50, "{}", lang.code());
            let mut bundle = FluentBundle::new_concurrent(vec![lang.code().parse().unwrap()]);
            let resource = FluentResource::try_new(source(lang).to_owned()).unwrap();
            bundle.add_resource(resource).expect("no duplicate keys");
        }
    }

    #[test]
    fn i18n_every_language_has_every_key_with_the_same_variables() {
        let reference = compile::variables(&parsed(Lang::En));
        let mut problems = Vec::new();
        for lang in [Lang::Ru, Lang::Zh] {
            let other = compile::variables(&parsed(lang));
            for (id, vars) in &reference {
                match other.get(id) {
                    None => problems.push(format!("{}: no {id}", lang.code())),
                    Some(theirs) if theirs != vars => problems.push(format!(
                        "{}: {id} has variables {theirs:?}, English {vars:?}",
                        lang.code()
                    )),
                    Some(_) => {}
                }
            }
            for id in other.keys().filter(|id| !reference.contains_key(*id)) {
                problems.push(format!("{}: {id} is not in English", lang.code()));
            }
        }
        assert!(problems.is_empty(), "{problems:#?}");
    }

    /// Formats a compiled pattern as assets/js/i18n.js does (numbers plain, as Fluent's).
    fn format(pattern: &Value, n: i64, rules: &PluralRules) -> String {
        match pattern {
            Value::String(s) => s.clone(),
            Value::Array(elements) => elements.iter().map(|e| format(e, n, rules)).collect(),
            Value::Object(o) if o.contains_key("v") => n.to_string(),
            Value::Object(o) => {
                let cases = o["c"].as_object().expect("cases");
                let category = match rules.select(n).expect("category") {
                    PluralCategory::ZERO => "zero",
                    PluralCategory::ONE => "one",
                    PluralCategory::TWO => "two",
                    PluralCategory::FEW => "few",
                    PluralCategory::MANY => "many",
                    PluralCategory::OTHER => "other",
                };
                let chosen = cases
                    .get(&n.to_string())
                    .or_else(|| cases.get(category))
                    .or_else(|| cases.get(o["d"].as_str().unwrap_or_default()))
                    .expect("a variant");
                format(chosen, n, rules)
            }
            other => panic!("not a pattern: {other}"),
        }
    }

    /// The page's copy says what Fluent itself says, plurals and all.
    #[test]
    fn i18n_the_pages_catalogue_formats_as_fluent_does() {
        for lang in Lang::ALL {
            let catalog = catalog(lang);
            let rules = PluralRules::create(
                lang.code()
                    .parse::<unic_langid::LanguageIdentifier>()
                    .unwrap(),
                PluralRuleType::CARDINAL,
            )
            .unwrap();
            let variables = compile::variables(&parsed(lang));
            for (id, pattern) in compiled(lang) {
                let message = catalog.bundle.get_message(&id).expect("in the bundle");
                for n in [0, 1, 2, 3, 4, 5, 11, 12, 21, 22, 25, 101, 111] {
                    let mut args = FluentArgs::new();
                    for var in &variables[&id] {
                        args.set(var.clone(), FluentValue::from(n));
                    }
                    let mut errors = Vec::new();
                    let want = catalog.bundle.format_pattern(
                        message.value().expect("value"),
                        Some(&args),
                        &mut errors,
                    );
                    assert!(errors.is_empty(), "{}: {id}: {errors:?}", lang.code());
                    assert_eq!(format(&pattern, n, &rules), want, "{}: {id}", lang.code());
                }
            }
        }
        // Russian picks among its three forms.
        let ru = compiled(Lang::Ru);
        let rules = PluralRules::create(
            "ru".parse::<unic_langid::LanguageIdentifier>().unwrap(),
            PluralRuleType::CARDINAL,
        )
        .unwrap();
        let online: Vec<String> = [1, 3, 5, 21]
            .iter()
            .map(|n| format(&ru["online-count"], *n, &rules))
            .collect();
        assert_eq!(
            online,
            [
                "1 человек в сети",
                "3 человека в сети",
                "5 человек в сети",
                "21 человек в сети"
            ]
        );
    }

    /// The ids the code asks for literally: `t('id'`, `tn('id'`, `.t('id'` in the scripts,
    /// `t.get("id")` in the templates.
    fn ids_used(text: &str, openers: &[&str]) -> BTreeSet<String> {
        let mut ids = BTreeSet::new();
        for opener in openers {
            for (at, _) in text.match_indices(opener) {
                let before = text[..at].chars().next_back();
                if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                    continue; // e.g. `set('` or `sort('`
                }
                let rest = &text[at + opener.len()..];
                let quote = if opener.ends_with('\'') { '\'' } else { '"' };
                if let Some(end) = rest.find(quote) {
                    ids.insert(rest[..end].to_owned());
                }
            }
        }
        ids
    }

    #[test]
    fn i18n_every_key_the_page_uses_is_in_the_catalogue() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let known = compiled(Lang::En);
        let mut used = BTreeSet::new();
        let mut files: Vec<_> = std::fs::read_dir(root.join("assets/js"))
            .expect("assets/js")
            .map(|e| e.expect("entry").path())
            .filter(|p| p.extension().is_some_and(|e| e == "js"))
            .filter(|p| !p.ends_with("admin.js"))
            .collect();
        files.push(root.join("assets/embed.js"));
        for file in &files {
            let text = std::fs::read_to_string(file).expect("script");
            used.extend(ids_used(&text, &["t('", "tn('", "t(\"", "tn(\""]));
        }
        for file in ["base.html", "index.html", "widget.html"] {
            let text = std::fs::read_to_string(root.join("templates").join(file)).expect("html");
            used.extend(ids_used(&text, &["t.get(\""]));
        }
        assert!(used.len() > 40, "{used:?}");
        let missing: Vec<_> = used.iter().filter(|id| !known.contains_key(*id)).collect();
        assert!(
            missing.is_empty(),
            "used but not in the catalogue: {missing:?}"
        );
    }
}
