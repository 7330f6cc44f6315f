//! Which sites may use the chat, and the headers every response carries.
//!
//! `--allowed-origins` lists the other sites that may embed the widget. A browser sends `Origin`
//! with a WebSocket upgrade: the server's own origin and the listed ones are accepted, any other
//! is refused with 403; a client that sends none (not a browser) is accepted. The same list
//! decides CORS for `/embed.js` and `/assets/`, and `frame-ancestors` for every page.

use actix_web::http::header::{self, HeaderMap, HeaderValue};
use actix_web::HttpRequest;
use url::Url;

/// An origin as browsers send it: `scheme://host[:port]`, lower case, the default port left
/// out. Only http and https, and nothing after the authority.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin(String);

impl Origin {
    /// Parses an origin given by an operator. A trailing `/` is allowed; a path, query,
    /// fragment, user, wildcard, space or list is not.
    pub fn parse(text: &str) -> Result<Origin, String> {
        let trimmed = text.trim();
        let refuse = |why: &str| Err(format!("{trimmed:?} is not an origin ({why})"));
        if trimmed.contains(['*', ' ', ';', ',']) {
            return refuse("one scheme://host[:port], no wildcards or lists");
        }
        let url = match Url::parse(trimmed) {
            Ok(url) => url,
            Err(e) => return refuse(&e.to_string()),
        };
        if !matches!(url.scheme(), "http" | "https") {
            return refuse("the scheme must be http or https");
        }
        if url.host().is_none() || !url.username().is_empty() || url.password().is_some() {
            return refuse("scheme://host[:port] only");
        }
        let rest = &trimmed[trimmed.find("://").map_or(0, |i| i + 3)..];
        if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
            return refuse("no path, query or fragment");
        }
        if rest.contains('/') && !rest.ends_with('/') {
            return refuse("no path");
        }
        Ok(Origin(url.origin().ascii_serialization()))
    }

    /// The origin a browser sent, if it is one.
    fn of_header(value: &str) -> Option<Origin> {
        let url = Url::parse(value.trim()).ok()?;
        let origin = url.origin();
        origin
            .is_tuple()
            .then(|| Origin(origin.ascii_serialization()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn is_https(&self) -> bool {
        self.0.starts_with("https://")
    }
}

/// The allowed origins and the header values built from them once, at start-up.
#[derive(Debug, Clone)]
pub struct OriginPolicy {
    allowed: Vec<Origin>,
    /// `--public-origin`: the server's own origin, when it is known. Without it the server
    /// trusts the `Host` header to name it, over plain http.
    public: Option<Origin>,
    csp: HeaderValue,
    hsts: Option<HeaderValue>,
}

/// How long browsers keep to https once told (one year).
const HSTS_MAX_AGE_SECS: u32 = 31_536_000;

impl OriginPolicy {
    /// Refuses (naming the entry) anything in `allowed` or `public` that is not an origin.
    pub fn new(allowed: &[String], public: Option<&str>) -> Result<Self, String> {
        let allowed = allowed
            .iter()
            .filter(|o| !o.trim().is_empty())
            .map(|o| Origin::parse(o).map_err(|e| format!("--allowed-origins: {e}")))
            .collect::<Result<Vec<_>, _>>()?;
        let public = public
            .filter(|o| !o.trim().is_empty())
            .map(|o| Origin::parse(o).map_err(|e| format!("--public-origin: {e}")))
            .transpose()?;
        let mut ancestors = String::from("'self'");
        for origin in &allowed {
            ancestors.push(' ');
            ancestors.push_str(origin.as_str());
        }
        // No inline script anywhere; WebSockets to this host only ('self' covers ws/wss here).
        let csp = format!(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             connect-src 'self'; worker-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; \
             frame-ancestors {ancestors}"
        );
        let csp = HeaderValue::from_str(&csp).map_err(|e| format!("bad policy: {e}"))?;
        let hsts = public.as_ref().filter(|o| o.is_https()).map(|_| {
            HeaderValue::from_str(&format!("max-age={HSTS_MAX_AGE_SECS}"))
                .unwrap_or(HeaderValue::from_static("max-age=31536000"))
        });
        Ok(OriginPolicy {
            allowed,
            public,
            csp,
            hsts,
        })
    }

    /// Whether a WebSocket upgrade with these headers may proceed.
    pub fn allows_upgrade(&self, req: &HttpRequest) -> bool {
        let Some(origin) = req.headers().get(header::ORIGIN) else {
            return true; // not a browser
        };
        let Some(origin) = origin.to_str().ok().and_then(Origin::of_header) else {
            return false;
        };
        self.allowed.contains(&origin) || self.is_own(&origin, req)
    }

    fn is_listed(&self, origin: &str) -> bool {
        Origin::of_header(origin).is_some_and(|o| self.allowed.contains(&o))
    }

    /// Whether `origin` is the server's own: `--public-origin` exactly when given; otherwise
    /// `http://` and the `Host` this request was sent to, port included.
    fn is_own(&self, origin: &Origin, req: &HttpRequest) -> bool {
        if let Some(public) = &self.public {
            return origin == public;
        }
        let host = req
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok());
        host.and_then(|h| Origin::of_header(&format!("http://{h}")))
            .is_some_and(|own| &own == origin)
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
        headers.insert(
            header::HeaderName::from_static("permissions-policy"),
            HeaderValue::from_static(PERMISSIONS_POLICY),
        );
        if let Some(hsts) = &self.hsts {
            headers.insert(header::STRICT_TRANSPORT_SECURITY, hsts.clone());
        }
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
        if self.is_listed(origin) {
            if let Ok(value) = HeaderValue::from_str(origin) {
                headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
            }
        }
    }
}

/// The chat uses none of these powerful features: no page of ours, nor anything that might be
/// injected into it, may ask for them.
const PERMISSIONS_POLICY: &str =
    "camera=(), microphone=(), geolocation=(), payment=(), usb=(), interest-cohort=()";

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    #[test]
    fn own_and_listed_origins_may_upgrade_others_may_not() {
        let policy = OriginPolicy::new(&["https://Friends.example/".into()], None).expect("ok");
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
        // The scheme counts too, and only http is the server's own without --public-origin.
        assert!(!policy.allows_upgrade(&with_origin("https://chat.example:8080")));
        assert!(!policy.allows_upgrade(&with_origin("ws://chat.example:8080")));
        assert!(!policy.allows_upgrade(&with_origin("foo://chat.example:8080")));
        let no_origin = TestRequest::default()
            .insert_header((header::HOST, "chat.example:8080"))
            .to_http_request();
        assert!(policy.allows_upgrade(&no_origin));
    }

    #[test]
    fn frame_ancestors_follow_the_list() {
        let policy = OriginPolicy::new(&["https://a.example".into()], None).expect("ok");
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

    #[test]
    fn with_a_public_origin_the_host_header_is_not_trusted() {
        let policy = OriginPolicy::new(&[], Some("https://chat.example")).expect("ok");
        let req = |host: &str, origin: &str| {
            TestRequest::default()
                .insert_header((header::HOST, host))
                .insert_header((header::ORIGIN, origin))
                .to_http_request()
        };
        assert!(policy.allows_upgrade(&req("chat.example", "https://chat.example")));
        assert!(!policy.allows_upgrade(&req("evil.example:80", "http://evil.example")));
        let mut headers = HeaderMap::new();
        policy.add_security_headers(&mut headers);
        assert!(headers.contains_key(header::STRICT_TRANSPORT_SECURITY));
    }

    #[test]
    fn entries_that_are_not_origins_are_refused_by_name() {
        for bad in [
            "*",
            "https://*.example",
            "https://a.example; report-uri https://evil.example/r",
            "https://a.example https://b.example",
            "https://a.example/path",
            "https://a.example?x=1",
            "ftp://a.example",
            "a.example",
            "https://user@a.example",
        ] {
            let err = OriginPolicy::new(&[bad.to_owned()], None).expect_err(bad);
            assert!(err.contains("--allowed-origins"), "{err}");
        }
        let policy = OriginPolicy::new(&["HTTPS://A.example:443/".into()], None).expect("ok");
        assert_eq!(policy.allowed, vec![Origin("https://a.example".into())]);
    }
}
