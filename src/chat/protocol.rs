//! The wire format, in one place: client frames are parsed here (borrowing from the frame where
//! they can) and server frames are serialized here. Unknown extra fields are ignored.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use super::wants::{normalize_interests, parse_lang, BadInterests, Wants};

/// A frame from a client, parsed and checked for shape (not yet for state).
#[derive(Debug, PartialEq, Eq)]
pub enum ClientFrame<'a> {
    /// With the solution of a proof-of-work challenge (`altcha`, base64), once asked for one,
    /// and what the visitor asks of a partner (`interests`, `lang`, `fallback`), checked.
    Request {
        altcha: Option<Cow<'a, str>>,
        wants: Wants,
    },
    Message(Cow<'a, str>),
    Typing(bool),
    /// Report the partner (`reason` and `note` are checked by `moderation::reports::check`),
    /// which ends the chat for the reporter.
    Report {
        reason: Cow<'a, str>,
        note: Option<Cow<'a, str>>,
    },
    /// End the chat (or leave the queue): the server answers `ended` and closes (1000).
    Leave,
}

/// Why a client frame was refused. `code()` goes to the client as the error code: `bad_json`
/// for text that is not JSON or not an object, `bad_frame` for a well-formed object whose fields
/// are missing or of the wrong type, `unknown_type` for a `type` we do not speak,
/// `bad_interests` for a request's interests that are not up to five tags of 1 to 32
/// characters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("the frame is not a JSON object: {0}")]
    BadJson(String),
    #[error("unknown frame type {0:?}; expected request, message, typing, report or leave")]
    UnknownType(String),
    #[error("{0}")]
    BadField(&'static str),
    #[error("a field is of the wrong type: {0}")]
    WrongFieldType(String),
    #[error("{0}")]
    BadInterests(BadInterests),
}

impl FrameError {
    pub fn code(&self) -> &'static str {
        match self {
            FrameError::BadJson(_) => "bad_json",
            FrameError::UnknownType(_) => "unknown_type",
            FrameError::BadField(_) | FrameError::WrongFieldType(_) => "bad_frame",
            FrameError::BadInterests(_) => "bad_interests",
        }
    }
}

#[derive(Deserialize)]
struct RawFrame<'a> {
    #[serde(rename = "type", borrow)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    message: Option<Cow<'a, str>>,
    #[serde(default)]
    typing: Option<bool>,
    #[serde(borrow, default)]
    altcha: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    reason: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    note: Option<Cow<'a, str>>,
    /// Any JSON here: a list that is not of strings is `bad_interests`, not `bad_frame`.
    #[serde(default)]
    interests: Option<serde_json::Value>,
    #[serde(borrow, default)]
    lang: Option<Cow<'a, str>>,
    #[serde(default)]
    fallback: Option<bool>,
}

/// What a request asks of a partner. A language that is not one of the page's is no
/// preference (a page may say `de`, or `en-GB`, which is `en`).
fn wants(
    interests: Option<serde_json::Value>,
    lang: Option<&str>,
    fallback: Option<bool>,
) -> Result<Wants, FrameError> {
    let interests = match interests {
        None | Some(serde_json::Value::Null) => Vec::new(),
        Some(serde_json::Value::Array(list)) => {
            let mut tags = Vec::with_capacity(list.len());
            for tag in &list {
                let tag = tag
                    .as_str()
                    .ok_or(FrameError::BadInterests(BadInterests::BadTag))?;
                tags.push(tag);
            }
            normalize_interests(tags).map_err(FrameError::BadInterests)?
        }
        Some(_) => return Err(FrameError::BadInterests(BadInterests::NotAList)),
    };
    Ok(Wants {
        interests,
        lang: lang.and_then(parse_lang),
        fallback: fallback.unwrap_or(true),
    })
}

/// Longest part of a client's own unknown type echoed back in an error.
const MAX_ECHOED_TYPE_CHARS: usize = 32;

/// Parses one text frame.
pub fn parse_client_frame(text: &str) -> Result<ClientFrame<'_>, FrameError> {
    // serde would also read a struct from a JSON array; the protocol speaks objects only.
    if !text.trim_start().starts_with('{') {
        return Err(FrameError::BadJson("expected a JSON object".into()));
    }
    // serde's messages say where and what, never anything of ours.
    let raw: RawFrame<'_> = serde_json::from_str(text).map_err(|e| {
        // A data error is well-formed JSON of the wrong shape, unless the text breaks off or
        // goes wrong after the field that did not fit (serde stops at the first error).
        let well_formed = e.classify() == serde_json::error::Category::Data
            && serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok();
        if well_formed {
            FrameError::WrongFieldType(e.to_string())
        } else {
            FrameError::BadJson(e.to_string())
        }
    })?;
    let kind = raw
        .kind
        .ok_or(FrameError::BadField("the frame has no \"type\" field"))?;
    match kind.as_ref() {
        "request" => Ok(ClientFrame::Request {
            wants: wants(raw.interests, raw.lang.as_deref(), raw.fallback)?,
            altcha: raw.altcha,
        }),
        "message" => raw
            .message
            .map(ClientFrame::Message)
            .ok_or(FrameError::BadField(
                "a message frame needs a string \"message\" field",
            )),
        "typing" => raw
            .typing
            .map(ClientFrame::Typing)
            .ok_or(FrameError::BadField(
                "a typing frame needs a boolean \"typing\" field",
            )),
        "report" => Ok(ClientFrame::Report {
            reason: raw.reason.unwrap_or_default(),
            note: raw.note,
        }),
        "leave" => Ok(ClientFrame::Leave),
        other => Err(FrameError::UnknownType(
            other.chars().take(MAX_ECHOED_TYPE_CHARS).collect(),
        )),
    }
}

/// Who a message frame is shown as: the sender gets `me` (its receipt), the partner `guest`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Author {
    Me,
    Guest,
}

/// A frame from the server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ServerFrame<'a> {
    Waiting,
    /// Paired. `common`: the interests both gave (empty when paired at random). `resume`: the
    /// token with which this visitor may take the chat up again on a new connection after its
    /// own broke (`/ws?resume=<token>`, see `chat::resume`).
    Response {
        common: Vec<Cow<'a, str>>,
        #[serde(skip_serializing_if = "Option::is_none")]
        resume: Option<Cow<'a, str>>,
    },
    /// A new connection took a chat up again (`/ws?resume=`); `resume` is the next token.
    Resumed {
        resume: Cow<'a, str>,
    },
    /// The partner's connection broke: the chat is held for it for a while.
    #[serde(rename = "partner_away")]
    PartnerAway,
    /// The partner is back; what was held for it goes to it now.
    #[serde(rename = "partner_back")]
    PartnerBack,
    Message {
        message: Cow<'a, str>,
        from: Author,
    },
    Typing {
        typing: bool,
    },
    Online {
        count: usize,
    },
    Error {
        error: Cow<'a, str>,
        detail: Cow<'a, str>,
    },
    /// The report was stored; the connection closes next.
    Reported,
    /// The chat is over and the connection closes next. `report`: the sealed evidence with
    /// which the visitor may still report the partner (`POST /report`), when there was one.
    Ended {
        #[serde(skip_serializing_if = "Option::is_none")]
        report: Option<Cow<'a, str>>,
    },
}

impl ServerFrame<'_> {
    /// The frame as JSON text. Serializing these types cannot fail (no maps, no non-string keys).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    pub fn error(code: &'static str, detail: impl Into<String>) -> ServerFrame<'static> {
        ServerFrame::Error {
            error: Cow::Borrowed(code),
            detail: Cow::Owned(detail.into()),
        }
    }
}

/// An error frame that carries a proof-of-work challenge to solve (`challenge_required`,
/// `challenge_failed`): the error frame with a `challenge` field, the challenge's JSON.
pub fn challenge_frame<C: Serialize>(code: &str, detail: &str, challenge: &C) -> String {
    #[derive(Serialize)]
    struct ChallengeError<'a, C> {
        #[serde(rename = "type")]
        kind: &'static str,
        error: &'a str,
        detail: &'a str,
        challenge: &'a C,
    }
    let frame = ChallengeError {
        kind: "error",
        error: code,
        detail,
        challenge,
    };
    serde_json::to_string(&frame).unwrap_or_default()
}

/// The two copies of a relayed message, `(to the sender, to the partner)`, with the text
/// escaped once for both.
pub fn message_frames(text: &str) -> (String, String) {
    let escaped = serde_json::to_string(text).unwrap_or_default();
    (
        format!(r#"{{"type":"message","message":{escaped},"from":"me"}}"#),
        format!(r#"{{"type":"message","message":{escaped},"from":"guest"}}"#),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::wants::Lang;

    #[test]
    fn parses_each_client_frame_and_ignores_extra_fields() {
        assert_eq!(
            parse_client_frame(r#"{"type":"request","x":1}"#),
            Ok(ClientFrame::Request {
                altcha: None,
                wants: Wants::default()
            })
        );
        assert_eq!(
            parse_client_frame(r#"{"type":"request","altcha":"eyJ9"}"#),
            Ok(ClientFrame::Request {
                altcha: Some("eyJ9".into()),
                wants: Wants::default()
            })
        );
        assert_eq!(
            parse_client_frame(r#"{"type":"message","message":"hi \"you\"\n"}"#),
            Ok(ClientFrame::Message("hi \"you\"\n".into()))
        );
        assert_eq!(
            parse_client_frame(r#"{"typing":false,"type":"typing"}"#),
            Ok(ClientFrame::Typing(false))
        );
        assert_eq!(
            parse_client_frame(r#"{"type":"report","reason":"spam","note":"n"}"#),
            Ok(ClientFrame::Report {
                reason: "spam".into(),
                note: Some("n".into())
            })
        );
        assert_eq!(
            parse_client_frame(r#"{"type":"leave"}"#),
            Ok(ClientFrame::Leave)
        );
    }

    #[test]
    fn names_what_is_wrong_with_a_bad_frame() {
        let code = |t: &str| parse_client_frame(t).map(|_| ()).unwrap_err().code();
        assert_eq!(code("not json"), "bad_json");
        assert_eq!(code("[1,2]"), "bad_json");
        assert_eq!(code(r#"{"type":"request""#), "bad_json");
        assert_eq!(code(r#"{"type":7}"#), "bad_frame");
        // A field of the wrong type followed by broken JSON is still not JSON.
        assert_eq!(code(r#"{"type":7,"#), "bad_json");
        assert_eq!(code(r#"{"type":"message","message":5 x"#), "bad_json");
        assert_eq!(code(r#"{"type":"dance"}"#), "unknown_type");
        assert_eq!(code(r#"{"message":"x"}"#), "bad_frame");
        assert_eq!(code(r#"{"type":"message"}"#), "bad_frame");
        assert_eq!(code(r#"{"type":"message","message":5}"#), "bad_frame");
        assert_eq!(code(r#"{"type":"message","message":null}"#), "bad_frame");
        assert_eq!(code(r#"{"type":"typing","typing":"yes"}"#), "bad_frame");
        assert_eq!(code(r#"{"type":"typing"}"#), "bad_frame");
        assert_eq!(code(r#"{"type":"request","altcha":5}"#), "bad_frame");
        assert_eq!(code(r#"{"type":"report","note":5}"#), "bad_frame");
    }

    #[test]
    fn message_frames_match_the_serialized_frame() {
        let text = "line\n\"quoted\" \u{1F600} </script>";
        let (me, guest) = message_frames(text);
        let expect = |from| {
            ServerFrame::Message {
                message: text.into(),
                from,
            }
            .to_json()
        };
        assert_eq!(me, expect(Author::Me));
        assert_eq!(guest, expect(Author::Guest));
    }

    #[test]
    fn serializes_server_frames_as_the_protocol_says() {
        let me = ServerFrame::Message {
            message: "a<b".into(),
            from: Author::Me,
        };
        assert_eq!(
            me.to_json(),
            r#"{"type":"message","message":"a<b","from":"me"}"#
        );
        assert_eq!(ServerFrame::Waiting.to_json(), r#"{"type":"waiting"}"#);
        assert_eq!(
            ServerFrame::Response {
                common: vec![],
                resume: None
            }
            .to_json(),
            r#"{"type":"response","common":[]}"#
        );
        assert_eq!(
            ServerFrame::Response {
                common: vec!["music".into(), "go".into()],
                resume: Some("ab".into())
            }
            .to_json(),
            r#"{"type":"response","common":["music","go"],"resume":"ab"}"#
        );
        assert_eq!(
            ServerFrame::Resumed {
                resume: "cd".into()
            }
            .to_json(),
            r#"{"type":"resumed","resume":"cd"}"#
        );
        assert_eq!(
            ServerFrame::PartnerAway.to_json(),
            r#"{"type":"partner_away"}"#
        );
        assert_eq!(
            ServerFrame::PartnerBack.to_json(),
            r#"{"type":"partner_back"}"#
        );
        assert_eq!(
            ServerFrame::Online { count: 3 }.to_json(),
            r#"{"type":"online","count":3}"#
        );
        assert_eq!(
            ServerFrame::Typing { typing: true }.to_json(),
            r#"{"type":"typing","typing":true}"#
        );
        assert_eq!(
            ServerFrame::error("not_paired", "x").to_json(),
            r#"{"type":"error","error":"not_paired","detail":"x"}"#
        );
    }

    #[test]
    fn a_request_carries_normalised_interests_a_language_and_fallback() {
        let parsed = parse_client_frame(
            r#"{"type":"request","interests":[" Music","GO","music","cafe\u0301"],"lang":"ru-RU","fallback":false}"#,
        );
        assert_eq!(
            parsed,
            Ok(ClientFrame::Request {
                altcha: None,
                wants: Wants {
                    interests: vec!["music".into(), "go".into(), "caf\u{e9}".into()],
                    lang: Some(Lang::Ru),
                    fallback: false,
                }
            })
        );
        // An unknown language is no preference; null interests are none.
        let parsed = parse_client_frame(r#"{"type":"request","interests":null,"lang":"de"}"#);
        assert_eq!(
            parsed,
            Ok(ClientFrame::Request {
                altcha: None,
                wants: Wants::default()
            })
        );
    }

    #[test]
    fn bad_interests_are_refused_with_their_own_code() {
        let code = |t: &str| parse_client_frame(t).map(|_| ()).unwrap_err().code();
        let six = r#"{"type":"request","interests":["a","b","c","d","e","f"]}"#;
        assert_eq!(code(six), "bad_interests");
        let long = format!(r#"{{"type":"request","interests":["{}"]}}"#, "x".repeat(33));
        assert_eq!(code(&long), "bad_interests");
        assert_eq!(
            code(r#"{"type":"request","interests":[""]}"#),
            "bad_interests"
        );
        assert_eq!(
            code(r#"{"type":"request","interests":[5]}"#),
            "bad_interests"
        );
        assert_eq!(
            code(r#"{"type":"request","interests":"music"}"#),
            "bad_interests"
        );
        assert_eq!(
            code(r#"{"type":"request","interests":["a\u0000"]}"#),
            "bad_interests"
        );
        // Six given, five once duplicates are merged: fine.
        assert!(
            parse_client_frame(r#"{"type":"request","interests":["a","b","c","d","e","A"]}"#)
                .is_ok()
        );
        assert_eq!(code(r#"{"type":"request","lang":5}"#), "bad_frame");
        assert_eq!(code(r#"{"type":"request","fallback":"no"}"#), "bad_frame");
    }
}
