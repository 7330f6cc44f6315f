//! A Fluent resource turned into the small JSON the page's script reads (assets/js/i18n.js):
//! the server parses the `.ftl` once (fluent-syntax), so the browser needs no Fluent parser,
//! only a few lines that fill in variables and pick plural forms.
//!
//! A message becomes a *pattern*: a string when it is plain text, else a list of elements —
//! a string, `{"v": "name"}` (the variable `$name`), or `{"s": "name", "c": {key: pattern},
//! "d": "default key"}` (a select on `$name`: a number picks the variant whose key is that
//! number, else its plural category, else the default). References to other messages and to
//! terms are copied in. Functions and attributes are refused: the page has no use for them.

use std::collections::{BTreeMap, BTreeSet};

use fluent_syntax::ast::{
    Entry, Expression, InlineExpression, Pattern, PatternElement, Resource, VariantKey,
};
use serde_json::{Map, Value};

/// A resource's messages as `{id: pattern}`, and what could not be compiled (`id: why`).
pub fn messages(resource: &Resource<&str>) -> (Map<String, Value>, Vec<String>) {
    let index = Index::of(resource);
    let mut out = Map::new();
    let mut errors = Vec::new();
    for (id, pattern) in &index.messages {
        match index.pattern(pattern, 0) {
            Ok(value) => {
                out.insert((*id).to_owned(), value);
            }
            Err(why) => errors.push(format!("{id}: {why}")),
        }
    }
    for entry in &resource.body {
        if let Entry::Message(m) = entry {
            if !m.attributes.is_empty() {
                errors.push(format!("{}: attributes are not supported", m.id.name));
            }
            if m.value.is_none() {
                errors.push(format!("{}: a message without a value", m.id.name));
            }
        }
    }
    (out, errors)
}

/// Every message's variables (`$name`), as the page must pass them (the tests compare them
/// across languages).
#[cfg_attr(not(test), allow(dead_code))]
pub fn variables(resource: &Resource<&str>) -> BTreeMap<String, BTreeSet<String>> {
    let index = Index::of(resource);
    index
        .messages
        .iter()
        .map(|(id, pattern)| {
            let mut found = BTreeSet::new();
            index.variables_of(pattern, &mut found, 0);
            ((*id).to_owned(), found)
        })
        .collect()
}

/// References deeper than this are a loop.
const MAX_DEPTH: usize = 8;

struct Index<'r> {
    messages: BTreeMap<&'r str, &'r Pattern<&'r str>>,
    terms: BTreeMap<&'r str, &'r Pattern<&'r str>>,
}

impl<'r> Index<'r> {
    fn of(resource: &'r Resource<&'r str>) -> Index<'r> {
        let mut messages = BTreeMap::new();
        let mut terms = BTreeMap::new();
        for entry in &resource.body {
            match entry {
                Entry::Message(m) => {
                    if let Some(value) = &m.value {
                        messages.insert(m.id.name, value);
                    }
                }
                Entry::Term(t) => {
                    terms.insert(t.id.name, &t.value);
                }
                _ => {}
            }
        }
        Index { messages, terms }
    }

    fn pattern(&self, pattern: &Pattern<&str>, depth: usize) -> Result<Value, String> {
        if depth > MAX_DEPTH {
            return Err("references loop".into());
        }
        let mut elements: Vec<Value> = Vec::new();
        for element in &pattern.elements {
            match element {
                PatternElement::TextElement { value } => push_text(&mut elements, value),
                PatternElement::Placeable { expression } => {
                    self.expression(expression, &mut elements, depth)?
                }
            }
        }
        Ok(match elements.as_slice() {
            [] => Value::String(String::new()),
            [Value::String(s)] => Value::String(s.clone()),
            _ => Value::Array(elements),
        })
    }

    fn expression(
        &self,
        expression: &Expression<&str>,
        out: &mut Vec<Value>,
        depth: usize,
    ) -> Result<(), String> {
        match expression {
            Expression::Inline(inline) => self.inline(inline, out, depth),
            Expression::Select { selector, variants } => {
                let InlineExpression::VariableReference { id } = selector else {
                    return Err("a select on something other than a variable".into());
                };
                let mut cases = Map::new();
                let mut default = None;
                for variant in variants {
                    let key = match &variant.key {
                        VariantKey::Identifier { name } => (*name).to_owned(),
                        VariantKey::NumberLiteral { value } => (*value).to_owned(),
                    };
                    if variant.default {
                        default = Some(key.clone());
                    }
                    cases.insert(key, self.pattern(&variant.value, depth + 1)?);
                }
                let default = default.ok_or("a select without a default variant")?;
                let mut select = Map::new();
                select.insert("s".into(), Value::String(id.name.to_owned()));
                select.insert("c".into(), Value::Object(cases));
                select.insert("d".into(), Value::String(default));
                out.push(Value::Object(select));
                Ok(())
            }
        }
    }

    fn inline(
        &self,
        inline: &InlineExpression<&str>,
        out: &mut Vec<Value>,
        depth: usize,
    ) -> Result<(), String> {
        match inline {
            InlineExpression::StringLiteral { value } => {
                push_text(
                    out,
                    &fluent_syntax::unicode::unescape_unicode_to_string(value),
                );
            }
            InlineExpression::NumberLiteral { value } => push_text(out, value),
            InlineExpression::VariableReference { id } => {
                let mut var = Map::new();
                var.insert("v".into(), Value::String(id.name.to_owned()));
                out.push(Value::Object(var));
            }
            InlineExpression::MessageReference { id, attribute } => {
                if attribute.is_some() {
                    return Err("a reference to an attribute".into());
                }
                let target = self
                    .messages
                    .get(id.name)
                    .ok_or_else(|| format!("no message {}", id.name))?;
                self.splice(self.pattern(target, depth + 1)?, out);
            }
            InlineExpression::TermReference {
                id,
                attribute,
                arguments,
            } => {
                if attribute.is_some() || arguments.is_some() {
                    return Err("a term with an attribute or arguments".into());
                }
                let target = self
                    .terms
                    .get(id.name)
                    .ok_or_else(|| format!("no term -{}", id.name))?;
                self.splice(self.pattern(target, depth + 1)?, out);
            }
            InlineExpression::FunctionReference { id, .. } => {
                return Err(format!("the function {} is not supported", id.name));
            }
            InlineExpression::Placeable { expression } => {
                self.expression(expression, out, depth)?
            }
        }
        Ok(())
    }

    /// A referenced pattern, in place.
    fn splice(&self, pattern: Value, out: &mut Vec<Value>) {
        match pattern {
            Value::String(s) => push_text(out, &s),
            Value::Array(elements) => {
                for element in elements {
                    match element {
                        Value::String(s) => push_text(out, &s),
                        other => out.push(other),
                    }
                }
            }
            other => out.push(other),
        }
    }

    #[cfg_attr(not(test), allow(dead_code))]
    fn variables_of(&self, pattern: &Pattern<&str>, found: &mut BTreeSet<String>, depth: usize) {
        if depth > MAX_DEPTH {
            return;
        }
        for element in &pattern.elements {
            if let PatternElement::Placeable { expression } = element {
                self.variables_in(expression, found, depth);
            }
        }
    }

    fn variables_in(
        &self,
        expression: &Expression<&str>,
        found: &mut BTreeSet<String>,
        depth: usize,
    ) {
        match expression {
            Expression::Select { selector, variants } => {
                self.inline_variables(selector, found, depth);
                for variant in variants {
                    self.variables_of(&variant.value, found, depth + 1);
                }
            }
            Expression::Inline(inline) => self.inline_variables(inline, found, depth),
        }
    }

    fn inline_variables(
        &self,
        inline: &InlineExpression<&str>,
        found: &mut BTreeSet<String>,
        depth: usize,
    ) {
        match inline {
            InlineExpression::VariableReference { id } => {
                found.insert(id.name.to_owned());
            }
            InlineExpression::MessageReference { id, .. } => {
                if let Some(p) = self.messages.get(id.name) {
                    self.variables_of(p, found, depth + 1);
                }
            }
            InlineExpression::TermReference { id, .. } => {
                if let Some(p) = self.terms.get(id.name) {
                    self.variables_of(p, found, depth + 1);
                }
            }
            InlineExpression::FunctionReference { arguments, .. } => {
                for arg in &arguments.positional {
                    self.inline_variables(arg, found, depth);
                }
            }
            InlineExpression::Placeable { expression } => {
                self.variables_in(expression, found, depth)
            }
            InlineExpression::StringLiteral { .. } | InlineExpression::NumberLiteral { .. } => {}
        }
    }
}

/// Appends text, joined to the text before it.
fn push_text(out: &mut Vec<Value>, text: &str) {
    if text.is_empty() {
        return;
    }
    if let Some(Value::String(last)) = out.last_mut() {
        last.push_str(text);
    } else {
        out.push(Value::String(text.to_owned()));
    }
}
