//! Which sites may use the chat, and the headers every response carries.
//!
//! `--allowed-origins` lists the other sites that may embed the widget. A browser sends `Origin`
//! with a WebSocket upgrade: the server's own origin and the listed ones are accepted, any other
//! is refused with 403; a client that sends none (not a browser) is accepted. The same list
//! decides CORS for `/embed.js` and `/assets/`, and `frame-ancestors` for every page.

use actix_web::http::header::{self, HeaderMap, HeaderValue};
use actix_web::HttpRequest;

/// The allowed origins and the header values built from them once, at start-up.
#[derive(Debug, Clone)]
pub struct OriginPolicy {
    allowed: Vec<String>,
    csp: HeaderValue,
}

impl OriginPolicy {
    pub fn new(allowed: &[String]) -> Self {
        let allowed: Vec<String> = allowed
            .iter()
            .map(|o| normalize(o))
            .filter(|o| !o.is_empty())
            .collect();
        let mut ancestors = String::from("'self'");
        for origin in &allowed {
            ancestors.push(' ');
            ancestors.push_str(origin);
        }
        // No inline script anywhere; WebSockets to this host only ('self' covers ws/wss here).
        let csp = format!(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; \
             frame-ancestors {ancestors}"
        );
        OriginPolicy {
            allowed,
            csp: HeaderValue::from_str(&csp).unwrap_or_else(|_| {
                HeaderValue::from_static("default-src 'self'; frame-ancestors 'self'")
            }),
        }
    }

    /// Whether a WebSocket upgrade with these headers may proceed.
    pub fn allows_upgrade(&self, req: &HttpRequest) -> bool {
        let Some(origin) = req.headers().get(header::ORIGIN) else {
            return true; // not a browser
        };
        let Ok(origin) = origin.to_str() else {
            return false;
        };
        let origin = normalize(origin);
        self.is_listed(&origin) || is_same_origin(&origin, req)
    }

    pub fn is_listed(&self, origin: &str) -> bool {
        self.allowed.iter().any(|o| o == origin)
    }

    /// Headers for every response.
    pub fn add_security_headers(&self, headers: &mut HeaderMap) {
        headers.insert(header::CONTENT_SECURITY_POLICY, self.csp.clone());
        headers.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        headers.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        );
    }

    /// CORS for the embed script and its assets: a listed origin may load them.
    pub fn add_cors_headers(&self, req_headers: &HeaderMap, headers: &mut HeaderMap) {
        headers.append(header::VARY, HeaderValue::from_static("Origin"));
        let Some(origin) = req_headers
            .get(header::ORIGIN)
            .and_then(|o| o.to_str().ok())
        else {
            return;
        };
        if self.is_listed(&normalize(origin)) {
            if let Ok(value) = HeaderValue::from_str(origin) {
                headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
            }
        }
    }
}

/// `https://Example.com/` → `https://example.com`.
fn normalize(origin: &str) -> String {
    origin.trim().trim_end_matches('/').to_ascii_lowercase()
}

/// Whether `origin` (scheme://host[:port]) names the host this request was sent to.
fn is_same_origin(origin: &str, req: &HttpRequest) -> bool {
    let Some((_, authority)) = origin.split_once("://") else {
        return false;
    };
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(|h| h.to_ascii_lowercase());
    host.as_deref() == Some(authority)
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    #[test]
    fn own_and_listed_origins_may_upgrade_others_may_not() {
        let policy = OriginPolicy::new(&["https://Friends.example/".into()]);
        let with_origin = |origin: &str| {
            TestRequest::default()
                .insert_header((header::HOST, "chat.example:8080"))
                .insert_header((header::ORIGIN, origin))
                .to_http_request()
        };
        assert!(policy.allows_upgrade(&with_origin("http://chat.example:8080")));
        assert!(policy.allows_upgrade(&with_origin("https://friends.example")));
        assert!(!policy.allows_upgrade(&with_origin("https://evil.example")));
        assert!(!policy.allows_upgrade(&with_origin("http://chat.example:9090")));
        let no_origin = TestRequest::default()
            .insert_header((header::HOST, "chat.example:8080"))
            .to_http_request();
        assert!(policy.allows_upgrade(&no_origin));
    }

    #[test]
    fn frame_ancestors_follow_the_list() {
        let policy = OriginPolicy::new(&["https://a.example".into()]);
        let mut headers = HeaderMap::new();
        policy.add_security_headers(&mut headers);
        let csp = headers
            .get(header::CONTENT_SECURITY_POLICY)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        assert!(
            csp.contains("frame-ancestors 'self' https://a.example"),
            "{csp}"
        );
        assert!(csp.contains("script-src 'self'"), "{csp}");
    }
}
